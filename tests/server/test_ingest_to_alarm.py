"""Ingest → SPC → alarm → WebSocket and signed webhook, against a live server and database."""

from __future__ import annotations

import gzip
import json

import asyncpg
import pytest

from server.services import webhook_signing
from tests.fixtures.server import LiveServer
from tests.fixtures.webhooks import WebhookReceiver
from tests.server.helpers import WsListener, batch_headers, samples

IN_CONTROL = [10.0, 10.5, 9.5, 10.2, 9.8, 10.1, 9.9, 10.3, 9.7, 10.0]


@pytest.fixture(scope="module")
def admin(live_server: LiveServer):
    with live_server.client("admin") as client:
        yield client


def create_characteristic(admin, key: str, **extra) -> dict:
    body = {"key": key, "name": key.replace("_", " "), "unit": "mm", "baseline_points": 0, **extra}
    r = admin.post("/characteristics", json=body)
    assert r.status_code == 201, r.text
    return r.json()


def set_limits(admin, key: str, center: float, sigma: float, **extra) -> dict:
    r = admin.post(f"/characteristics/{key}/limits",
                   json={"center": center, "sigma": sigma, "reason": "test limits", **extra})
    assert r.status_code == 201, r.text
    return r.json()


def ingest(live_server: LiveServer, body: dict, key: str | None = None, role: str = "agent",
           **kw):
    import httpx

    return httpx.post(f"{live_server.url}/api/v1/ingest", json=body,
                      headers=batch_headers(live_server.headers(role), key), timeout=30, **kw)


def test_rule1_violation_reaches_websocket_and_signed_webhook(
    live_server: LiveServer, admin, webhook_receiver: WebhookReceiver
) -> None:
    create_characteristic(admin, "bore")
    set_limits(admin, "bore", 10.0, 1.0, effective_from="2026-01-01T00:00:00Z")
    hook = admin.post("/webhooks", json={"url": webhook_receiver.url}).json()
    ws = WsListener(live_server.ws_url, live_server.keys["operator"], ["bore"])
    try:
        r = ingest(live_server, {"agent": "t", "samples": samples("bore", IN_CONTROL)})
        assert r.json() == {"accepted": 10, "duplicates": 0, "replayed": False}
        r = ingest(live_server, {"agent": "t", "samples": samples("bore", [14.0], start=10)})
        assert r.status_code == 200, r.text
        point = ws.wait_for(lambda m: m["type"] == "point" and m["violations"])
        # 14 is beyond the I chart's UCL (13); the jump of 4 beyond the MR chart's (3.686).
        assert point["violations"] == ["we1", "mr:nelson1"]
        assert point["statistic"] == 14.0 and point["ucl"] == 13.0
        assert point["companion"]["statistic"] == pytest.approx(4.0)
        assert point["companion"]["ucl"] == pytest.approx(3.267 * 1.128, rel=1e-3)
        alarm = ws.wait_for(lambda m: m["type"] == "alarm" and m["alarm"]["rule"] == "we1")
        assert alarm["event"] == "alarm.opened" and alarm["alarm"]["id"] is not None
    finally:
        ws.close()
    deliveries = webhook_receiver.wait_for(2)
    for delivery in deliveries:
        webhook_signing.verify(hook["secret"], delivery.headers, delivery.body)
        assert delivery.json["type"] == "alarm.opened"
        assert delivery.json["data"]["characteristic"] == "bore"
    assert {d.json["data"]["rule"] for d in deliveries} == {"we1", "mr:nelson1"}
    with pytest.raises(webhook_signing.SignatureError):
        webhook_signing.verify(hook["secret"], deliveries[0].headers, deliveries[0].body + b" ")
    alarms = admin.get("/alarms", params={"characteristic": "bore"}).json()
    assert sorted((a["rule"], a["state"], a["point_count"]) for a in alarms) == [
        ("mr:nelson1", "open", 1), ("we1", "open", 1)]


def test_retried_batch_is_stored_once(live_server: LiveServer, admin) -> None:
    create_characteristic(admin, "retry")
    body = {"samples": samples("retry", [1.0, 2.0, 3.0])}
    first = ingest(live_server, body, key="batch-1").json()
    again = ingest(live_server, body, key="batch-1").json()
    assert first == {"accepted": 3, "duplicates": 0, "replayed": False}
    assert again == {"accepted": 3, "duplicates": 0, "replayed": True}
    # The same samples under a new key are recognised as duplicates, not stored twice.
    assert ingest(live_server, body, key="batch-2").json()["duplicates"] == 3
    chart = admin.get("/characteristics/retry/chart").json()
    assert [p["statistic"] for p in chart["points"]] == [1.0, 2.0, 3.0]


def test_gzip_body_accepted(live_server: LiveServer, admin) -> None:
    import httpx

    create_characteristic(admin, "gz")
    raw = gzip.compress(json.dumps({"samples": samples("gz", [1.0, 2.0])}).encode())
    r = httpx.post(f"{live_server.url}/api/v1/ingest", content=raw,
                   headers={**batch_headers(live_server.headers("agent")),
                            "Content-Encoding": "gzip", "Content-Type": "application/json"})
    assert r.status_code == 200 and r.json()["accepted"] == 2


@pytest.mark.parametrize(
    ("mutate", "status", "message"),
    [
        (lambda s: s[2].update(characteristic="nope"), 422, "samples[2]: unknown characteristic"),
        (lambda s: s[1].update(ts="2099-01-01T00:00:00Z"), 422, "in the future"),
        (lambda s: s[0].update(ts="2026-01-05T08:00:00"), 422, "no time zone"),
        (lambda s: s[1].update(value="abc"), 400, "samples[1].value"),
        (lambda s: s[1].update(value=None), 422, "needs a value"),
        (lambda s: s[0].update(quality="great"), 400, "samples[0].quality"),
        (lambda s: s[0].pop("ts"), 400, "samples[0].ts: Field required"),
        (lambda s: s[0].update(ts=1767600000), 400, "samples[0].ts"),  # no Unix seconds
        (lambda s: s[2].update(characteristic="a\x00b"), 400, "samples[2].characteristic"),
        (lambda s: s[1].update(value=True), 400, "samples[1].value"),
    ],
)
def test_bad_batch_is_rejected_whole_naming_the_sample(
    live_server: LiveServer, admin, mutate, status: int, message: str
) -> None:
    if admin.get("/characteristics/strict").status_code == 404:
        create_characteristic(admin, "strict")
    before = len(admin.get("/characteristics/strict/chart").json()["points"])
    batch = samples("strict", [1.0, 2.0, 3.0], start=before)
    mutate(batch)
    r = ingest(live_server, {"samples": batch})
    assert r.status_code == status, r.text
    assert message in r.json()["detail"]
    assert len(admin.get("/characteristics/strict/chart").json()["points"]) == before


def test_nan_and_oversized_and_garbage_bodies(live_server: LiveServer, admin) -> None:
    import httpx

    if admin.get("/characteristics/strict").status_code == 404:
        create_characteristic(admin, "strict")
    url, headers = f"{live_server.url}/api/v1/ingest", batch_headers(live_server.headers("agent"))
    nan = ('{"samples": [{"characteristic": "strict", "ts": "2026-01-05T08:00:00Z", '
           '"value": NaN}]}')
    r = httpx.post(url, content=nan, headers=headers)
    assert r.status_code in (400, 422) and "samples[0]" in r.json()["detail"]
    r = httpx.post(url, content=b"{not json", headers=headers)
    assert r.status_code == 400 and "invalid batch" in r.json()["detail"]
    r = httpx.post(url, content=b"\x1f\x8bnot gzip",
                   headers={**headers, "Content-Encoding": "gzip"})
    assert r.status_code == 400 and "gzip" in r.json()["detail"]


def test_keys_and_roles(live_server: LiveServer) -> None:
    import httpx

    url = f"{live_server.url}/api/v1"
    body = {"samples": []}
    assert httpx.post(f"{url}/ingest", json=body).status_code == 401
    bad = {"Authorization": "Bearer spc_deadbeef_notakey"}
    assert httpx.post(f"{url}/ingest", json=body, headers=bad).status_code == 401
    # operators read but cannot ingest or change limits; agents only ingest
    assert httpx.post(f"{url}/ingest", json=body,
                      headers=live_server.headers("operator")).status_code == 403
    agent = live_server.headers("agent")
    assert httpx.get(f"{url}/characteristics", headers=agent).status_code == 403
    assert httpx.get(f"{url}/characteristics",
                     headers=live_server.headers("operator")).status_code == 200
    r = httpx.post(f"{url}/characteristics", headers=live_server.headers("operator"),
                   json={"key": "x", "name": "x"})
    assert r.status_code == 403 and "engineer role" in r.json()["detail"]
    assert httpx.get(f"{url}/webhooks", headers=live_server.headers("engineer")).status_code == 403
    assert httpx.get(f"{url}/keys", headers=live_server.headers("admin")).status_code == 200


def test_webhook_urls_other_than_http_are_refused(admin) -> None:
    for url in ("file:///etc/passwd", "gopher://127.0.0.1/", "ftp://x/"):
        r = admin.post("/webhooks", json={"url": url})
        assert r.status_code == 422 and r.json()["detail"].startswith("url: String should match")


async def test_measurements_live_in_a_hypertable(live_server: LiveServer) -> None:
    conn = await asyncpg.connect(live_server.dsn)
    try:
        names = await conn.fetch("SELECT hypertable_name FROM timescaledb_information.hypertables")
    finally:
        await conn.close()
    assert [r["hypertable_name"] for r in names] == ["measurements"]
    with live_server.client("operator") as client:
        health = client.get("/health").json()
    assert health["storage"]["mode"] == "timescaledb-apache"
    assert health["migrations"]["pending"] == []
