"""The whole chain on real processes and sockets.

simulator (OPC UA + Modbus TCP) → edge agents → HTTP ingest → TimescaleDB hypertable → SPC on
ingest → alarm → WebSocket client and a webhook receiver that verifies the signature.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from server.services import webhook_signing
from tests.fixtures.server import LiveServer
from tests.fixtures.webhooks import WebhookReceiver
from tests.server.helpers import WsListener

MEAN, SIGMA = 25.0, 0.005  # bore_diameter in simulators/examples/machining_line.yaml
POLL_S = 0.1
# One characteristic per protocol, both reading the simulated bore diameter.
SERIES = {"bore_opcua": "opcua", "bore_modbus": "modbus"}


def count_points(server: LiveServer, key: str) -> int:
    with server.client("operator") as c:
        chart = c.get(f"/characteristics/{key}/chart", params={"limit": 100000}).json()
    return len(chart["points"])


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.mark.slow
async def test_shift_on_the_simulator_raises_alarms_over_both_protocols(
    live_server: LiveServer, simulator_factory, agent_factory,
    webhook_receiver: WebhookReceiver,
) -> None:
    sim = simulator_factory(rate=10.0, seed=3)
    with live_server.client("engineer") as c:
        for key in SERIES:
            r = c.post("/characteristics", json={"key": key, "name": f"Bore ({SERIES[key]})",
                                                 "unit": "mm", "baseline_points": 0})
            assert r.status_code == 201, r.text
            # Phase II against the known process standard (mu0, sigma0).
            r = c.post(f"/characteristics/{key}/limits", json={
                "center": MEAN, "sigma": SIGMA, "reason": "process standard",
                "effective_from": (datetime.now(UTC) - timedelta(hours=1)).isoformat()})
            assert r.status_code == 201, r.text
    with live_server.client("admin") as c:
        secret = c.post("/webhooks", json={"url": webhook_receiver.url}).json()["secret"]
    server = {"url": live_server.url, "api_key": live_server.agent_key}
    upload = {"batch_size": 200, "interval_s": 0.2}
    agent_factory({
        "agent": {"name": "e2e-opcua"}, "server": server, "upload": upload,
        "sources": [{"kind": "opcua", "name": "cnc1-opcua", "endpoint": sim.opcua_endpoint,
                     "security": {"policy": "None", "allow_insecure": True},
                     "mode": "poll", "interval_s": POLL_S,
                     "tags": [{"node_id": "ns=2;s=Line1.CNC1.bore_diameter",
                               "characteristic": "bore_opcua", "unit": "mm"}]}],
    })
    agent_factory({
        "agent": {"name": "e2e-modbus"}, "server": server, "upload": upload,
        "sources": [{"kind": "modbus", "name": "cnc1-modbus", "host": "127.0.0.1",
                     "port": sim.modbus_port, "unit_id": 1, "interval_s": POLL_S,
                     "tags": [{"characteristic": "bore_modbus", "address": 0,
                               "type": "float32", "byte_order": "ABCD", "unit": "mm"}]}],
    })
    ws = WsListener(live_server.ws_url, live_server.keys["operator"], list(SERIES))
    try:
        wait_until(lambda: all(count_points(live_server, k) >= 20 for k in SERIES), 30,
                   "20 in-control points per protocol")
        shifted_at = datetime.now(UTC)
        sim.inject("bore_diameter", "shift", magnitude=4.0)
        for key in SERIES:
            alarm = ws.wait_for(
                lambda m, key=key: m["type"] == "alarm" and m["characteristic"] == key
                and datetime.fromisoformat(m["alarm"]["first_ts"]) >= shifted_at
                and m["alarm"]["rule"] in ("we1", "we2", "we3"),
                timeout=20,
            )
            assert alarm["event"] in ("alarm.opened", "alarm.updated")
    finally:
        ws.close()

    def shift_alarms_delivered() -> set[str]:
        seen = set()
        for d in webhook_receiver.deliveries:
            data = d.json["data"]
            if datetime.fromisoformat(data["first_ts"]) >= shifted_at:
                seen.add(data["characteristic"])
        return seen

    wait_until(lambda: shift_alarms_delivered() == set(SERIES), 20, "a webhook per protocol")
    for d in webhook_receiver.deliveries:
        webhook_signing.verify(secret, d.headers, d.body)
    # The points are in the hypertable, in chunks TimescaleDB manages.
    conn = await asyncpg.connect(live_server.dsn)
    try:
        stored = await conn.fetchval(
            "SELECT count(*) FROM measurements m JOIN characteristics c "
            "ON c.id = m.characteristic_id WHERE c.key = ANY($1)", list(SERIES))
        chunks = await conn.fetchval("SELECT count(*) FROM show_chunks('measurements')")
        hypertable = await conn.fetchval(
            "SELECT hypertable_name FROM timescaledb_information.hypertables")
    finally:
        await conn.close()
    assert stored >= 40 and chunks >= 1 and hypertable == "measurements"
