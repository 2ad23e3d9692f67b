"""Every chart kind through ingest: subgroups, attributes with lot sizes, EWMA and CUSUM.

Expected limits are computed here from the textbook formulas (Montgomery, Introduction to
Statistical Quality Control, 7th ed.: Xbar-R ch. 6.2, p chart 7.2, c chart 7.3, EWMA 9.2), not
by spc_core, so a wrong wiring between server and library shows up as a wrong number.
"""

from __future__ import annotations

import math

import httpx
import pytest

from tests.fixtures.server import LiveServer
from tests.server.helpers import batch_headers, samples

KNOWN = "2026-01-01T00:00:00Z"


def make(server: LiveServer, key: str, kind: str, center: float, sigma: float = 1.0,
         **extra) -> None:
    with server.client("engineer") as c:
        r = c.post("/characteristics", json={"key": key, "name": key, "chart_type": kind,
                                             "baseline_points": 0, **extra})
        assert r.status_code == 201, r.text
        r = c.post(f"/characteristics/{key}/limits", json={
            "center": center, "sigma": sigma, "reason": "known", "effective_from": KNOWN})
        assert r.status_code == 201, r.text


def post(server: LiveServer, batch: list[dict]) -> httpx.Response:
    return httpx.post(f"{server.url}/api/v1/ingest", json={"samples": batch},
                      headers=batch_headers(server.headers("agent")), timeout=30)


def chart(server: LiveServer, key: str) -> dict:
    with server.client("operator") as c:
        return c.get(f"/characteristics/{key}/chart", params={"limit": 1000}).json()


def test_xbar_r_groups_consecutive_samples(live_server: LiveServer) -> None:
    make(live_server, "xr", "xbar-r", 10.0, 1.0, subgroup_size=5)
    values = [10.0, 11.0, 9.0, 10.0, 10.0,   # mean 10, range 2
              10.5, 9.5, 10.0, 10.0, 10.0,   # mean 10, range 1
              13.0, 12.0, 12.5, 13.5, 12.0,  # mean 12.6: beyond 10 + 3/sqrt(5) = 11.342
              10.0, 10.0]                    # an incomplete subgroup: waits
    assert post(live_server, samples("xr", values)).status_code == 200
    points = chart(live_server, "xr")["points"]
    assert [p["statistic"] for p in points] == pytest.approx([10.0, 10.0, 12.6])
    assert points[0]["ucl"] == pytest.approx(10.0 + 3 / math.sqrt(5))
    # R chart: D2 = 2.326 (n = 5), center d2 * sigma, UCL D4 * R-bar = 4.918 * sigma
    assert points[0]["companion"]["center"] == pytest.approx(2.326, abs=1e-3)
    assert points[0]["companion"]["ucl"] == pytest.approx(4.918, abs=2e-3)
    assert points[1]["companion"]["statistic"] == pytest.approx(1.0)
    assert "we1" in points[2]["violations"]
    assert points[2]["ts"].startswith("2026-01-05T08:00:14")  # stamped with its last sample
    # three more samples complete the fourth subgroup
    assert post(live_server, samples("xr", [10.0, 10.0, 10.0], start=17)).status_code == 200
    assert len(chart(live_server, "xr")["points"]) == 4


def test_p_chart_stair_step_limits_and_bad_counts(live_server: LiveServer) -> None:
    make(live_server, "pp", "p", 0.1)
    lots = [(5, 50), (10, 100), (30, 100), (2, 200)]
    batch = samples("pp", [d for d, _ in lots])
    for s, (_, n) in zip(batch, lots, strict=True):
        s["size"] = n
    assert post(live_server, batch).status_code == 200
    points = chart(live_server, "pp")["points"]
    for p, (d, n) in zip(points, lots, strict=True):
        assert p["statistic"] == pytest.approx(d / n)
        assert p["ucl"] == pytest.approx(0.1 + 3 * math.sqrt(0.1 * 0.9 / n))
        assert p["lcl"] == pytest.approx(max(0.0, 0.1 - 3 * math.sqrt(0.1 * 0.9 / n)))
    assert points[0]["lcl"] == 0.0  # clamped, not negative
    assert "we1" in points[2]["violations"]
    for mutate, message in [
        ({"value": 3.0}, "'size' (units inspected) is required"),
        ({"value": 60.0, "size": 50}, "exceed the 50 units inspected"),
        ({"value": 2.5, "size": 50}, "whole count"),
        ({"value": -1.0, "size": 50}, "whole count"),
    ]:
        bad = samples("pp", [0.0], start=10)
        bad[0].pop("value")
        bad[0].update(mutate)
        r = post(live_server, bad)
        assert r.status_code == 422 and message in r.json()["detail"], r.text
    with live_server.client("engineer") as c:
        r = c.post("/characteristics/pp/limits", json={"center": 1.5, "reason": "nonsense"})
        assert r.status_code == 400 and "fraction defective" in r.json()["detail"]


def test_c_chart(live_server: LiveServer) -> None:
    make(live_server, "cc", "c", 4.0)
    assert post(live_server, samples("cc", [3.0, 5.0, 11.0])).status_code == 200
    points = chart(live_server, "cc")["points"]
    assert points[0]["ucl"] == pytest.approx(4 + 3 * 2) and points[0]["lcl"] == 0.0
    assert points[2]["violations"] == ["we1"]


def test_ewma_continues_across_batches(live_server: LiveServer) -> None:
    make(live_server, "ew", "ewma", 0.0, 1.0, options={"lam": 0.2, "L": 3.0})
    xs = [0.5, -0.2, 1.0, 2.0, 2.5, 3.0, 2.8]
    post(live_server, samples("ew", xs[:3]))
    post(live_server, samples("ew", xs[3:], start=3))
    points = chart(live_server, "ew")["points"]
    z, expected = 0.0, []
    for i, x in enumerate(xs, start=1):
        z = 0.2 * x + 0.8 * z
        half = 3.0 * math.sqrt(0.2 / 1.8 * (1 - 0.8 ** (2 * i)))
        expected.append((z, half))
    for p, (z, half) in zip(points, expected, strict=True):
        assert p["statistic"] == pytest.approx(z)
        assert p["ucl"] == pytest.approx(half)  # exact, time-varying limits
    first_signal = next(i for i, (z, half) in enumerate(expected) if z > half)
    assert points[first_signal]["violations"] == ["nelson1"]


def test_cusum_upper_sum(live_server: LiveServer) -> None:
    make(live_server, "cu", "cusum", 0.0, 1.0, options={"k": 0.5, "h": 4.0})
    xs = [1.5] * 6  # each step adds 1.0 to C+: beyond h = 4 at the fifth point
    post(live_server, samples("cu", xs))
    points = chart(live_server, "cu")["points"]
    assert [p["statistic"] for p in points] == pytest.approx([1, 2, 3, 4, 5, 6])
    assert [p["violations"] for p in points][3:] == [[], ["cusum_upper"], ["cusum_upper"]]


def test_bad_characteristic_definitions(live_server: LiveServer) -> None:
    with live_server.client("engineer") as c:
        for body, message in [
            ({"chart_type": "xbar-r"}, "needs subgroup_size >= 2"),
            ({"chart_type": "imr", "subgroup_size": 5}, "subgroup_size applies to"),
            ({"chart_type": "pie"}, "chart_type"),
            ({"chart_type": "ewma", "options": {"lam": 1.5}}, "options.lam"),
            ({"chart_type": "ewma", "options": {"lambda": 0.3}}, "options.lambda"),
        ]:
            r = c.post("/characteristics", json={"key": "bad", "name": "bad", **body})
            assert r.status_code == 422 and message in r.json()["detail"], r.text


def test_xbar_subgroups_per_part_and_per_time_window(live_server: LiveServer) -> None:
    make(live_server, "perpart", "xbar-s", 10.0, 1.0, subgroup_size=3, subgrouping="part")
    batch = samples("perpart", [10.0, 11.0, 12.0, 9.0, 9.5, 20.0, 21.0, 5.0])
    for s, part in zip(batch, ["A", "A", "A", "B", "B", "C", "C", "D"], strict=True):
        s["part_id"] = part
    assert post(live_server, batch).status_code == 200
    points = chart(live_server, "perpart")["points"]
    # A, B and C are closed (a later part arrived); D may still get more measurements.
    assert [p["statistic"] for p in points] == pytest.approx([11.0, 9.25, 20.5])
    # per-point limits follow each subgroup's own size: 3, 2, 2
    assert points[0]["ucl"] == pytest.approx(10 + 3 / math.sqrt(3))
    assert points[1]["ucl"] == pytest.approx(10 + 3 / math.sqrt(2))

    make(live_server, "windowed", "xbar-r", 10.0, 1.0, subgroup_size=2, subgrouping="time",
         subgroup_window_s=5)
    # T0 is aligned to 5 s: samples at +0..+4 s form one window, +5..+9 s the next.
    windows = [10.0] * 5 + [12.0] * 5 + [9.0]
    assert post(live_server, samples("windowed", windows)).status_code == 200
    points = chart(live_server, "windowed")["points"]
    assert [p["statistic"] for p in points] == pytest.approx([10.0, 12.0])
    with live_server.client("engineer") as c:
        r = c.post("/characteristics", json={"key": "w2", "name": "w2", "chart_type": "xbar-r",
                                             "subgroup_size": 2, "subgrouping": "time"})
        assert r.status_code == 422 and "subgroup_window_s" in r.json()["detail"]
        r = c.post("/characteristics", json={"key": "w3", "name": "w3", "subgrouping": "part"})
        assert r.status_code == 422 and "subgrouping applies to" in r.json()["detail"]


def test_fixed_lot_size_from_the_characteristic(live_server: LiveServer) -> None:
    make(live_server, "fixedlot", "np", 0.05, sample_size=40)
    assert post(live_server, samples("fixedlot", [2.0, 9.0])).status_code == 200
    points = chart(live_server, "fixedlot")["points"]
    assert points[0]["ucl"] == pytest.approx(40 * 0.05 + 3 * math.sqrt(40 * 0.05 * 0.95))
    assert "we1" in points[1]["violations"]
    with live_server.client("engineer") as c:
        r = c.post("/characteristics", json={"key": "x1", "name": "x", "sample_size": 5})
        assert r.status_code == 422 and "sample_size applies to" in r.json()["detail"]
