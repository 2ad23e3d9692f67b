"""Capability reports and phase I limit proposals over a time range, via the live API."""

from __future__ import annotations

import random

import httpx
import pytest

from tests.fixtures.server import LiveServer
from tests.server.helpers import T0, batch_headers, samples

RANGE = {"start": "2026-01-05T08:00:00Z", "end": "2026-01-05T09:00:00Z"}


@pytest.fixture(scope="module")
def series(live_server: LiveServer) -> list[float]:
    rng = random.Random(7)
    values = [rng.gauss(10.0, 0.1) for _ in range(100)]
    values[40] = 11.5  # an outlier phase I must exclude
    with live_server.client("engineer") as c:
        assert c.post("/characteristics", json={
            "key": "cap", "name": "cap", "lsl": 9.5, "usl": 10.6, "target": 10.0,
            "baseline_points": 0}).status_code == 201
        c.post("/characteristics", json={"key": "cnt", "name": "cnt", "chart_type": "c",
                                         "baseline_points": 0})
        c.post("/characteristics", json={"key": "nospec", "name": "nospec",
                                         "baseline_points": 0})
    r = httpx.post(f"{live_server.url}/api/v1/ingest", json={"samples": samples("cap", values)},
                   headers=batch_headers(live_server.headers("agent")))
    assert r.status_code == 200
    return values


def test_capability_report(live_server: LiveServer, series: list[float]) -> None:
    with live_server.client("operator") as c:
        report = c.get("/characteristics/cap/capability", params=RANGE).json()
    assert report["n"] == 100
    assert report["mean"] == pytest.approx(sum(series) / 100)
    assert report["cpk"] == pytest.approx(min(10.6 - report["mean"], report["mean"] - 9.5)
                                          / (3 * report["sigma_within"]))
    assert report["cp_ci"]["low"] < report["cp"] < report["cp_ci"]["high"]
    assert report["normality"]["p_value"] < 0.05  # the outlier breaks normality
    assert any("normal" in w.lower() for w in report["warnings"])
    assert sum(report["histogram"]["counts"]) == 100


def test_capability_bad_requests(live_server: LiveServer, series: list[float]) -> None:
    with live_server.client("operator") as c:
        r = c.get("/characteristics/nospec/capability")
        assert r.status_code == 400 and "no spec limits" in r.json()["detail"]
        r = c.get("/characteristics/cnt/capability")
        assert r.status_code == 400 and "variables data" in r.json()["detail"]
        r = c.get("/characteristics/cap/capability", params={"confidence": 1.5})
        assert r.status_code == 422
        r = c.get("/characteristics/cap/capability",
                  params={"start": "2027-01-01T00:00:00Z", "end": "2027-01-02T00:00:00Z"})
        assert r.status_code == 400 and "at least 2" in r.json()["detail"]


def test_phase1_proposal_excludes_the_outlier_and_stores_nothing(
    live_server: LiveServer, series: list[float]
) -> None:
    with live_server.client("engineer") as c:
        proposal = c.post("/characteristics/cap/limits/proposal", json=RANGE).json()
        assert [(e["index"], e["reason"]) for e in proposal["excluded"]] == [(40, "i:nelson1")]
        assert proposal["excluded"][0]["ts"].startswith((T0.replace(second=40)).isoformat()[:19])
        kept = [v for i, v in enumerate(series) if i != 40]
        assert proposal["center"] == pytest.approx(sum(kept) / len(kept))
        assert proposal["converged"] and proposal["included"] == 99
        assert c.get("/characteristics/cap/limits").json() == []  # a proposal stores nothing
        plain = c.post("/characteristics/cap/limits/proposal",
                       json={**RANGE, "exclude_out_of_control": False}).json()
        assert plain["excluded"] == [] and plain["center"] == pytest.approx(sum(series) / 100)
        r = c.post("/characteristics/cap/limits/proposal", json={**RANGE, "rules": "bogus"})
        assert r.status_code == 400 and "bogus" in r.json()["detail"]
    with live_server.client("operator") as c:
        assert c.post("/characteristics/cap/limits/proposal", json=RANGE).status_code == 403
