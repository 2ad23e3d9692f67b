"""docs/webhook_receiver.py, the documented receiver, run as a real HTTP server: it accepts the
server's real deliveries once each, and refuses a stale one and a tampered one; a replayed
delivery (same webhook-id, as the server's retries send it) is acknowledged but not processed
again, also after the receiver restarts."""

from __future__ import annotations

import time
from pathlib import Path

import asyncpg
import pytest

from server.services import webhook_signing
from tests.fixtures.server import LiveServer
from tests.security.helpers import ReceiverProcess, characteristic, raise_alarm


@pytest.fixture
def receiver(tmp_path: Path):
    secret = webhook_signing.new_secret()
    rp = ReceiverProcess(tmp_path, secret)
    rp.start()
    yield rp, secret
    rp.stop()


async def test_receiver_example(live_server: LiveServer, receiver) -> None:
    rp, secret = receiver
    with live_server.client("admin") as admin:
        sub = admin.post("/webhooks", json={"url": rp.url, "secret": secret}).json()
        for key in ("recv_a", "recv_b"):
            characteristic(live_server, key)
            raise_alarm(live_server, key)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            mine = [d for d in admin.get("/webhooks/deliveries").json()
                    if d["subscription_id"] == sub["id"]]
            if len(mine) >= 2 and all(d["state"] == "delivered" for d in mine):
                break
            time.sleep(0.2)
    assert len(mine) >= 2 and all(d["state"] == "delivered" for d in mine), mine
    events = rp.events()
    assert sorted(e["webhook_id"] for e in events) == sorted(d["event_id"] for d in mine)
    assert {e["data"]["characteristic"] for e in events} == {"recv_a", "recv_b"}
    assert rp.stats() == {"accepted": len(mine), "duplicates": 0, "rejected": 0}

    conn = await asyncpg.connect(live_server.dsn)
    try:
        row = await conn.fetchrow(
            "SELECT event_id, payload::text AS body FROM webhook_outbox WHERE id = $1",
            mine[0]["id"])
        with live_server.client("admin") as admin:  # outbox rows go with their subscription
            admin.delete(f"/webhooks/{sub['id']}")
    finally:
        await conn.close()
    body = row["body"].encode()  # the exact bytes the server sent
    # replayed: the same id again, freshly signed, as a server retry sends it → 2xx, not processed
    assert rp.post(webhook_signing.headers(secret, row["event_id"], body), body) == 204
    # stale: a valid signature over a timestamp 10 minutes old (a captured delivery) → refused
    stale = webhook_signing.headers(secret, "evt-stale", body, timestamp=int(time.time()) - 600)
    assert rp.post(stale, body) == 401
    # from the future beyond the tolerance → refused
    ahead = webhook_signing.headers(secret, "evt-ahead", body, timestamp=int(time.time()) + 600)
    assert rp.post(ahead, body) == 401
    # tampered: one byte of the body changed after signing → refused
    fresh = webhook_signing.headers(secret, "evt-tampered", body)
    assert rp.post(fresh, body.replace(b"recv_", b"recv-", 1)) == 401
    # signed with another secret, and unsigned → refused
    assert rp.post(webhook_signing.headers(webhook_signing.new_secret(), "evt-x", body),
                   body) == 401
    assert rp.post({"content-type": "application/json"}, body) == 401
    assert rp.stats() == {"accepted": len(mine), "duplicates": 1, "rejected": 5}
    # the dedupe survives a restart of the receiver
    rp.stop()
    rp.start()
    assert rp.post(webhook_signing.headers(secret, row["event_id"], body), body) == 204
    assert len(rp.events()) == len(mine)
    # and a new id with a valid signature is still accepted after all this
    assert rp.post(webhook_signing.headers(secret, "evt-new", body), body) == 204
    assert [e["webhook_id"] for e in rp.events()][-1] == "evt-new"
