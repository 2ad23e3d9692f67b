"""API keys: never in the server's log (at debug level, after requests that carried keys of every
role, failed logins, key creation and WebSocket logins) nor in the database in plain; WebSocket
logins by role; revocation."""

from __future__ import annotations

import json
import time
from pathlib import Path

import asyncpg
import httpx
import pytest
from websockets.sync.client import connect

from server.core.localdb import LocalCluster
from server.security import ROLES
from tests.fixtures.server import LiveServer, start_live_server
from tests.server.helpers import WsListener, batch_headers, samples


def ws_login(server: LiveServer, key: str) -> dict:
    with connect(server.ws_url, open_timeout=10) as ws:
        ws.send(json.dumps({"auth": key, "subscribe": ["*"]}))
        return json.loads(ws.recv(timeout=10))


def leaks(text: str, keys: list[str], window: int = 12) -> list[str]:
    """The keys any `window`-character piece of whose secret appears in `text`."""
    found = []
    for key in keys:
        secret = key.split("_", 2)[2]
        if any(secret[i:i + window] in text for i in range(len(secret) - window + 1)):
            found.append(key.split("_")[1])
    return found


def exercise_keys(s: LiveServer) -> list[str]:
    """Requests that carry keys of every role, allowed and refused, key creation and
    revocation, a forged key, WebSocket logins; returns every key used."""
    with s.client("engineer") as c:
        c.post("/characteristics", json={"key": "logged", "name": "L", "baseline_points": 0})
    used = [s.keys[r] for r in ROLES]
    for role in ROLES:  # every role on a route it may and one it may not use
        httpx.get(f"{s.url}/api/v1/characteristics", headers=s.headers(role))
        httpx.get(f"{s.url}/api/v1/keys", headers=s.headers(role))
    r = httpx.post(f"{s.url}/api/v1/ingest", json={"samples": samples("logged", [1.0, 2.0])},
                   headers=batch_headers(s.headers("agent")))
    assert r.status_code == 200
    r = httpx.post(f"{s.url}/api/v1/ingest", json={"samples": samples("nope", [1.0])},
                   headers=batch_headers(s.headers("agent")))
    assert r.status_code == 422  # a rejected batch may be logged; the key must not be
    with s.client("admin") as admin:
        created = admin.post("/keys", json={"role": "operator", "name": "fresh"}).json()
        used.append(created["key"])
        assert admin.delete(f"/keys/{created['id']}").status_code == 204
    forged = "spc_" + s.keys["admin"].split("_")[1] + "_WrongSecretButLongEnoughToBeNoticed123"
    used.append(forged)
    assert httpx.get(f"{s.url}/api/v1/keys",
                     headers={"Authorization": f"Bearer {forged}"}).status_code == 401
    assert httpx.get(f"{s.url}/api/v1/keys",
                     headers={"Authorization": f"Bearer {created['key']}"}).status_code == 401
    assert ws_login(s, s.keys["operator"])["type"] == "subscribed"
    assert ws_login(s, forged)["type"] == "error"
    time.sleep(0.5)
    return used


def check_log(s: LiveServer, used: list[str]) -> None:
    log = Path(s.log_path).read_text(errors="replace")
    # requests are logged (the WebSocket logins at least), so a leak would be found here
    assert "WebSocket /api/v1/ws" in log, log[-2000:]
    assert leaks(log, used) == [], "a piece of an API key secret appears in the server log"


@pytest.mark.parametrize("level", [
    "info",
    # uvicorn logs WebSocket frames at debug level; the server's log filter redacts keys
    "debug",
])
async def test_keys_never_logged_nor_stored_in_plain(
    pg_cluster: LocalCluster, tmp_path: Path, level: str
) -> None:
    s = start_live_server(pg_cluster, tmp_path, SPC_LOG_LEVEL=level)
    try:
        used = exercise_keys(s)
    finally:
        s.stop()
    conn = await asyncpg.connect(s.dsn)
    try:
        rows = [*await conn.fetch("SELECT * FROM api_keys"),
                *await conn.fetch("SELECT * FROM audit_log")]
        dump = "\n".join(str(dict(r)) for r in rows)
    finally:
        await conn.close()
    assert "key.create" in dump
    assert leaks(dump, used) == [], "an API key secret is stored in the database in plain"
    check_log(s, used)


@pytest.mark.parametrize("caller", [*ROLES, "none", "forged", "revoked"])
def test_websocket_login_by_role(live_server: LiveServer, caller: str) -> None:
    if caller == "revoked":
        with live_server.client("admin") as admin:
            created = admin.post("/keys", json={"role": "admin", "name": "ws-revoked"}).json()
            assert admin.delete(f"/keys/{created['id']}").status_code == 204
        key = created["key"]
    else:
        special = {"none": "", "forged": "spc_0badc0de_" + "B" * 43}
        key = special[caller] if caller in special else live_server.keys[caller]
    first = ws_login(live_server, key)
    if caller in ("operator", "engineer", "admin"):
        assert first["type"] == "subscribed"
    else:
        assert first["type"] == "error", first


def ingest_one(server: LiveServer, key: str, i: int) -> None:
    r = httpx.post(f"{server.url}/api/v1/ingest",
                   json={"samples": samples(key, [10.0], start=i)},
                   headers=batch_headers(server.headers("agent")))
    assert r.status_code == 200, r.text


def test_revoking_a_key_ends_its_open_websocket(live_server: LiveServer) -> None:
    with live_server.client("engineer") as c:
        c.post("/characteristics", json={"key": "ws_revoke", "name": "W", "baseline_points": 0})
    with live_server.client("admin") as admin:
        created = admin.post("/keys", json={"role": "operator", "name": "ws-live"}).json()
        ws = WsListener(live_server.ws_url, created["key"], ["ws_revoke"])
        try:
            ingest_one(live_server, "ws_revoke", 0)
            ws.wait_for(lambda m: m["type"] == "point")
            assert admin.delete(f"/keys/{created['id']}").status_code == 204
            time.sleep(1.0)
            before = len(ws.messages)
            for i in range(1, 4):
                ingest_one(live_server, "ws_revoke", i)
            time.sleep(1.5)
            points_after = [m for m in ws.messages[before:] if m["type"] == "point"]
        finally:
            ws.close()
    assert points_after == [], f"{len(points_after)} points pushed after the key was revoked"
