"""Chart queries: downsampling keeps extremes and violations; CSV export; bad ranges."""

from __future__ import annotations

import csv
import io
import random
from pathlib import Path

import httpx
import pytest

from server.core.localdb import LocalCluster
from tests.fixtures.server import LiveServer, start_live_server
from tests.server.helpers import batch_headers, samples

N = 2000


@pytest.fixture(scope="module")
def long_series(live_server: LiveServer) -> list[float]:
    with live_server.client("engineer") as c:
        c.post("/characteristics", json={"key": "long", "name": "long", "baseline_points": 0})
        c.post("/characteristics/long/limits", json={
            "center": 0.0, "sigma": 1.0, "reason": "known",
            "effective_from": "2026-01-01T00:00:00Z"})
    rng = random.Random(1)
    values = [max(-2.9, min(2.9, rng.gauss(0.0, 0.5))) for _ in range(N)]
    values[1234] = 9.0  # a rule 1 signal, which downsampling must keep
    values[77] = -2.95  # the series' minimum: not a violation, but its bucket's lowest point
    batch = samples("long", values)
    batch[500].update(value=None, quality="bad")
    r = httpx.post(f"{live_server.url}/api/v1/ingest", json={"samples": batch},
                   headers=batch_headers(live_server.headers("agent")), timeout=60)
    assert r.status_code == 200, r.text
    return values


def test_downsampling_keeps_extremes_violations_and_bad_points(
    live_server: LiveServer, long_series: list[float]
) -> None:
    with live_server.client("operator") as c:
        full = c.get("/characteristics/long/chart", params={"limit": 5000}).json()
        small = c.get("/characteristics/long/chart",
                      params={"limit": 100, "downsample": True}).json()
        recent = c.get("/characteristics/long/chart", params={"limit": 100}).json()
    assert len(full["points"]) == N and not full["downsampled"]
    signals = [p for p in full["points"] if p["violations"]]
    assert small["downsampled"]
    assert 50 <= len(small["points"]) <= 100 + len(signals) + 1
    values = [p["statistic"] for p in small["points"] if p["statistic"] is not None]
    assert max(values) == 9.0 and min(values) == -2.95
    assert any("we1" in p["violations"] for p in small["points"])
    assert any(p["quality"] == "bad" for p in small["points"])
    ts = [p["ts"] for p in small["points"]]
    assert ts == sorted(ts)
    # without downsample, the most recent points
    assert len(recent["points"]) == 100 and recent["points"][-1]["ts"] == full["points"][-1]["ts"]


def test_csv_export_has_every_sample(live_server: LiveServer, long_series: list[float]) -> None:
    with live_server.client("operator") as c:
        r = c.get("/characteristics/long/export.csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == N
    assert float(rows[1234]["value"]) == 9.0
    assert rows[500]["value"] == "" and rows[500]["quality"] == "bad"
    assert float(rows[3]["value"]) == long_series[3]  # repr round-trips floats exactly


def test_bad_chart_queries(live_server: LiveServer, long_series: list[float]) -> None:
    with live_server.client("operator") as c:
        r = c.get("/characteristics/long/chart", params={"start": "2026-01-05T09:00:00",
                                                         "end": "2026-01-05T10:00:00Z"})
        assert r.status_code == 400 and "time zone" in r.json()["detail"]
        r = c.get("/characteristics/long/chart", params={"start": "2026-01-06T00:00:00Z",
                                                         "end": "2026-01-05T00:00:00Z"})
        assert r.status_code == 400 and "before end" in r.json()["detail"]
        r = c.get("/characteristics/long/chart", params={"limit": 1})
        assert r.status_code == 422 and "limit" in r.json()["detail"]
        assert c.get("/characteristics/nope/chart").status_code == 404
        assert c.get("/characteristics/nope/export.csv").status_code == 404


def test_long_ranges_are_reduced_in_the_database(
    pg_cluster: LocalCluster, tmp_path: Path
) -> None:
    server = start_live_server(pg_cluster, tmp_path, SPC_CHART_REDUCE_IN_DATABASE_ABOVE="500")
    try:
        with server.client("engineer") as c:
            c.post("/characteristics", json={"key": "db", "name": "db", "baseline_points": 0})
            c.post("/characteristics/db/limits", json={
                "center": 0.0, "sigma": 1.0, "reason": "known",
                "effective_from": "2026-01-01T00:00:00Z"})
        rng = random.Random(3)
        values = [max(-2.9, min(2.9, rng.gauss(0.0, 0.5))) for _ in range(N)]
        values[1500], values[99] = 9.0, -2.95
        batch = samples("db", values)
        batch[700].update(value=None, quality="bad")
        httpx.post(f"{server.url}/api/v1/ingest", json={"samples": batch},
                   headers=batch_headers(server.headers("agent")), timeout=60).raise_for_status()
        with server.client("operator") as c:
            small = c.get("/characteristics/db/chart",
                          params={"limit": 100, "downsample": True}).json()
        assert small["downsampled"] and len(small["points"]) < N // 4
        stats = [p["statistic"] for p in small["points"] if p["statistic"] is not None]
        assert max(stats) == 9.0 and min(stats) == -2.95
        assert any("we1" in p["violations"] for p in small["points"])
        assert any(p["quality"] == "bad" for p in small["points"])
        # neighbours in the reduced series are not neighbours in the process: no moving range
        assert all(p.get("companion") is None for p in small["points"])
    finally:
        server.stop()
