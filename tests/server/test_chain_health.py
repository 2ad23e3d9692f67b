"""Source-down and agent-silent alarms from heartbeats, against a live server."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from server.core.localdb import LocalCluster
from tests.fixtures.server import start_live_server
from tests.fixtures.webhooks import WebhookReceiver
from tests.server.helpers import wait_until


def beat(server, sources: list[dict]) -> None:
    r = httpx.post(f"{server.url}/api/v1/agents/heartbeat", headers=server.headers("agent"),
                   json={"agent": "edge-1", "version": "0.1.0", "buffer_depth": 5,
                         "dropped": 0, "sources": sources})
    assert r.status_code == 204, r.text


def chain_alarms(server, kind: str) -> list[dict]:
    with server.client("operator") as c:
        return c.get("/alarms", params={"kind": kind}).json()


def test_source_down_and_agent_silent_open_once_and_close_on_recovery(
    pg_cluster: LocalCluster, tmp_path: Path, webhook_receiver: WebhookReceiver
) -> None:
    server = start_live_server(pg_cluster, tmp_path, SPC_AGENT_SILENT_AFTER_S="1",
                               SPC_WATCHDOG_INTERVAL_S="0.2")
    try:
        with server.client() as c:
            c.post("/webhooks", json={"url": webhook_receiver.url})
        down = [{"name": "plc1", "state": "connected"},
                {"name": "plc2", "state": "retrying", "last_error": "connection refused"}]
        beat(server, down)
        beat(server, down)  # still down: no second alarm
        alarms = chain_alarms(server, "source_down")
        assert [(a["subject"], a["state"]) for a in alarms] == [("edge-1/plc2", "open")]
        assert "connection refused" in alarms[0]["detail"]
        delivery = webhook_receiver.wait_for(1)[0].json
        assert delivery["data"]["kind"] == "source_down"
        beat(server, [{"name": "plc1", "state": "connected"},
                      {"name": "plc2", "state": "connected"}])
        assert chain_alarms(server, "source_down")[0]["state"] == "closed"
        # Now the agent goes quiet.
        wait_until(lambda: len(chain_alarms(server, "agent_silent")) == 1)
        time.sleep(0.6)  # several more watchdog rounds: still one alarm
        silent = chain_alarms(server, "agent_silent")
        assert [(a["subject"], a["state"]) for a in silent] == [("edge-1", "open")]
        beat(server, [])
        assert chain_alarms(server, "agent_silent")[0]["state"] == "closed"
    finally:
        server.stop()


def test_heartbeat_bad_input(live_server) -> None:
    url = f"{live_server.url}/api/v1/agents/heartbeat"
    r = httpx.post(url, headers=live_server.headers("agent"), json={"agent": "", "sources": []})
    assert r.status_code == 422
    r = httpx.post(url, headers=live_server.headers("agent"),
                   json={"agent": "a", "buffer_depth": -1})
    assert r.status_code == 422
    assert r.json()["detail"].startswith("buffer_depth: Input should be greater than")
    assert httpx.post(url, json={"agent": "a"}).status_code == 401
