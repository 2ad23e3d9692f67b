"""Webhook retries and dead letters, limits versions, restarts, plain PostgreSQL mode."""

from __future__ import annotations

import time
from pathlib import Path

import asyncpg
import httpx
import pytest

from server.core.localdb import LocalCluster
from tests.fixtures.server import LiveServer, start_live_server
from tests.fixtures.webhooks import WebhookReceiver
from tests.server.helpers import batch_headers, samples

CALM = [10.0, 10.5, 9.5, 10.2, 9.8, 10.1, 9.9, 10.3, 9.7, 10.0]


def post(server: LiveServer, body: dict) -> httpx.Response:
    r = httpx.post(f"{server.url}/api/v1/ingest", json=body,
                   headers=batch_headers(server.headers("agent")), timeout=30)
    assert r.status_code == 200, r.text
    return r


def setup_series(server: LiveServer, key: str) -> None:
    with server.client() as c:
        assert c.post("/characteristics", json={"key": key, "name": key,
                                                "baseline_points": 0}).status_code == 201
        assert c.post(f"/characteristics/{key}/limits", json={
            "center": 10.0, "sigma": 1.0, "reason": "known process",
            "effective_from": "2026-01-01T00:00:00Z"}).status_code == 201


def test_receiver_down_retries_then_dead_letter_then_resend(
    live_server: LiveServer, webhook_receiver: WebhookReceiver
) -> None:
    setup_series(live_server, "wh")
    with live_server.client() as c:
        c.post("/webhooks", json={"url": webhook_receiver.url})
    webhook_receiver.failures_to_give = 100  # the MES is down
    post(live_server, {"samples": samples("wh", [*CALM, 20.0])})
    deadline = time.monotonic() + 20
    with live_server.client() as c:
        while time.monotonic() < deadline:
            dead = c.get("/webhooks/deliveries", params={"state": "dead"}).json()
            if len(dead) == 2:
                break
            time.sleep(0.2)
        # 20 after calm data: alarms for I-chart rule 1 and MR-chart rule 1
        assert len(dead) == 2 and all(d["attempts"] == 4 for d in dead)  # MAX_ATTEMPTS
        assert all("HTTP 500" in d["last_error"] for d in dead)
        assert webhook_receiver.attempts == 8
        webhook_receiver.failures_to_give = 0  # the MES is back
        assert c.post(f"/webhooks/deliveries/{dead[0]['id']}/resend").status_code == 202
        delivered = webhook_receiver.wait_for(1)
        assert delivered[0].headers["webhook-id"] == dead[0]["event_id"]
        assert c.post("/webhooks/deliveries/999999/resend").status_code == 404


def test_new_limits_apply_to_later_points_only(live_server: LiveServer) -> None:
    setup_series(live_server, "lv")
    post(live_server, {"samples": samples("lv", CALM)})
    with live_server.client("engineer") as c:
        # A process improvement: tighter limits from point 10 on.
        from tests.server.helpers import T0
        effective = (T0.replace(second=10)).isoformat()
        r = c.post("/characteristics/lv/limits",
                   json={"center": 10.0, "sigma": 0.1, "reason": "new tooling",
                         "effective_from": effective})
        assert r.status_code == 201 and r.json()["version"] == 2
        assert r.json()["created_by"].startswith("key:")
        bad = c.post("/characteristics/lv/limits",
                     json={"center": 10.0, "sigma": 0.1, "reason": "older",
                           "effective_from": "2026-01-01T00:00:01Z"})
        assert bad.status_code == 409
        assert c.post("/characteristics/lv/limits",
                      json={"center": 1, "sigma": -1, "reason": "neg"}).status_code == 422
    post(live_server, {"samples": samples("lv", [10.5], start=10)})
    with live_server.client("operator") as c:
        chart = c.get("/characteristics/lv/chart").json()
    versions = [p["limits_version"] for p in chart["points"]]
    assert versions == [1] * 10 + [2]
    # 10.5 is 5 sigma out under version 2; under version 1 it would be in control.
    assert chart["points"][-1]["violations"] == ["we1"]
    assert all(not p["violations"] for p in chart["points"][:10])


def test_restart_neither_misses_nor_repeats_alarms(live_server: LiveServer) -> None:
    setup_series(live_server, "rs")
    post(live_server, {"samples": samples("rs", [*CALM, 20.0])})
    live_server.kill()  # a crash, not a clean stop
    live_server.start()
    # The same batch again (an agent retry after the crash) and more points, one violating.
    post(live_server, {"samples": samples("rs", [*CALM, 20.0])})
    post(live_server, {"samples": samples("rs", [10.0, 10.0, 10.0, 21.0], start=11)})
    with live_server.client("operator") as c:
        alarms = c.get("/alarms", params={"characteristic": "rs", "rule": "we1"}).json()
    assert sorted((a["rule"], a["point_count"]) for a in alarms) == [("we1", 1), ("we1", 1)]


def test_consecutive_violations_extend_one_alarm(live_server: LiveServer) -> None:
    setup_series(live_server, "ep")
    post(live_server, {"samples": samples("ep", [*CALM, 15.0, 16.0, 15.5, 10.0, 15.0])})
    with live_server.client("operator") as c:
        we1 = [a for a in c.get("/alarms", params={"characteristic": "ep"}).json()
               if a["rule"] == "we1"]
    assert sorted(a["point_count"] for a in we1) == [1, 3]


def test_auto_baseline_fits_limits_after_enough_points(live_server: LiveServer) -> None:
    with live_server.client() as c:
        c.post("/characteristics", json={"key": "auto", "name": "auto", "baseline_points": 10})
        post(live_server, {"samples": samples("auto", CALM[:9])})
        assert c.get("/characteristics/auto").json()["limits"] is None
        post(live_server, {"samples": samples("auto", CALM[9:], start=9)})
        limits = c.get("/characteristics/auto").json()["limits"]
    assert limits["version"] == 1 and limits["created_by"] == "system:auto-baseline"
    assert limits["center"] == pytest.approx(sum(CALM) / 10)


def test_plain_postgresql_mode(pg_cluster: LocalCluster, tmp_path: Path) -> None:
    server = start_live_server(pg_cluster, tmp_path, SPC_TIMESCALEDB="off")
    try:
        setup_series(server, "plain")
        post(server, {"samples": samples("plain", [*CALM, 20.0])})
        with server.client("operator") as c:
            assert c.get("/health").json()["storage"]["mode"] == "postgresql"
            assert sorted(a["rule"] for a in c.get("/alarms").json()) == ["mr:nelson1", "we1"]
    finally:
        server.stop()

    async def hypertables() -> int:
        conn = await asyncpg.connect(server.dsn)
        try:
            return await conn.fetchval(
                "SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'")
        finally:
            await conn.close()

    import asyncio
    assert asyncio.run(hypertables()) == 0
