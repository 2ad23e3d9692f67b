"""A small plant for the browser tests, built through the real API: a site with two lines,
stations, characteristics with and without limits and specs, fed through the ingest API."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import httpx

from tests.fixtures.server import LiveServer
from tests.server.helpers import batch_headers, samples

KNOWN = {"center": 10.0, "sigma": 1.0, "reason": "known process",
         "effective_from": "2020-01-01T00:00:00Z"}


def ingest(server: LiveServer, batch: list[dict]) -> None:
    r = httpx.post(f"{server.url}/api/v1/ingest", json={"samples": batch},
                   headers=batch_headers(server.headers("agent")))
    assert r.status_code == 200, r.text


def calm(n: int, seed: int = 1) -> list[float]:
    """In-control values around 10 with sigma 1, clipped so no run rule fires by chance."""
    rng = random.Random(seed)
    values = []
    for i in range(n):
        v = max(8.6, min(11.4, rng.gauss(10.0, 0.6)))
        # alternate sides of the centre so no same-side run or trend can build up
        values.append(10.0 + abs(v - 10.0) * (1 if i % 2 else -1) or 10.1)
    return values


def recent(n: int, step_s: float = 1.0) -> datetime:
    """The time of the first of n samples one step apart that end about now."""
    return datetime.now(UTC) - timedelta(seconds=n * step_s)


def build_plant(server: LiveServer) -> None:
    with server.client("engineer") as c:
        assert c.post("/sites", json={"key": "plant1", "name": "Plant 1"}).status_code == 201
        for line, name in (("lineA", "Line A"), ("lineB", "Line B")):
            assert c.post("/lines", json={"key": line, "name": name,
                                          "parent": "plant1"}).status_code == 201
        for station, name, line in (("a-op10", "OP10 turning", "lineA"),
                                    ("a-op20", "OP20 grinding", "lineA"),
                                    ("b-op10", "OP10 assembly", "lineB")):
            assert c.post("/stations", json={"key": station, "name": name,
                                             "parent": line}).status_code == 201
        chars = [
            {"key": "bore", "name": "Bore diameter", "unit": "mm", "station": "a-op10",
             "lsl": 6.0, "usl": 14.0, "target": 10.0},
            {"key": "length", "name": "Length", "unit": "mm", "station": "a-op10",
             "lsl": 5.0, "usl": 15.0},
            {"key": "flatness", "name": "Flatness", "unit": "µm", "station": "a-op20"},
            {"key": "torque", "name": "Torque", "unit": "N·m", "station": "b-op10",
             "baseline_points": 30},
            {"key": "spare", "name": "Spare gauge"},
        ]
        for ch in chars:
            body = {"baseline_points": 0, **ch}
            assert c.post("/characteristics", json=body).status_code == 201
            if body["baseline_points"] == 0:
                r = c.post(f"/characteristics/{ch['key']}/limits", json=KNOWN)
                assert r.status_code == 201, r.text
    n = 40
    for i, key in enumerate(("bore", "length", "spare")):
        ingest(server, samples(key, calm(n, seed=i), t0=recent(n)))
    ingest(server, samples("torque", calm(10, seed=9), t0=recent(10)))
    # Flatness stopped reporting a day ago: stale.
    ingest(server, samples("flatness", calm(n, seed=5), t0=recent(n) - timedelta(days=1)))


def build_history(server: LiveServer) -> None:
    """Characteristics for the chart, limits and capability views: two limit versions
    ("phase"), a baseline with an outlier ("outlier"), and an hour of 1 Hz data ("long")."""
    with server.client("engineer") as c:
        for key, name in (("phase", "Phase"), ("outlier", "Outlier"), ("long", "Long run")):
            r = c.post("/characteristics", json={"key": key, "name": name, "unit": "mm",
                                                 "baseline_points": 0, "station": "a-op20",
                                                 "lsl": 5.0, "usl": 15.5})
            assert r.status_code == 201, r.text
            assert c.post(f"/characteristics/{key}/limits", json=KNOWN).status_code == 201
    t0 = recent(40)
    ingest(server, samples("phase", calm(40, seed=3), t0=t0))
    with server.client("engineer") as c:
        r = c.post("/characteristics/phase/limits", json={
            "center": 10.2, "sigma": 0.9, "reason": "after maintenance",
            "effective_from": (t0 + timedelta(seconds=20.5)).isoformat()})
        assert r.status_code == 201, r.text
    values = calm(40, seed=4)
    values[25] = 16.0  # beyond 3 sigma: phase I must exclude it
    ingest(server, samples("outlier", values, t0=recent(40)))
    values = calm(3600, seed=6)
    values[1800] = 14.5
    ingest(server, samples("long", values, t0=recent(3600)))
