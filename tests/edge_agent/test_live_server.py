"""The agent against the real `spc server` (TimescaleDB): down, buffer, back, exactly once."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import asyncpg
import yaml

from tests.edge_agent.test_agent_process import buffer_state, start_agent, wait_until
from tests.fixtures.server import LiveServer, wait_free
from tests.fixtures.simulators import RunningSimulator

VARIABLES = ("bore_diameter", "surface_roughness", "spindle_temp")
KEYS = [f"ea.{v}" for v in VARIABLES]


async def stored(server: LiveServer) -> tuple[int, int]:
    """(rows, distinct (characteristic, ts)) stored for this test's characteristics."""
    conn = await asyncpg.connect(server.dsn)
    try:
        row = await conn.fetchrow(
            "SELECT count(*) AS n, count(DISTINCT (m.characteristic_id, m.ts)) AS d "
            "FROM measurements m JOIN characteristics c ON c.id = m.characteristic_id "
            "WHERE c.key = ANY($1::text[])", KEYS)
    finally:
        await conn.close()
    return row["n"], row["d"]


async def test_server_down_buffer_grows_server_back_every_sample_once(
        live_server: LiveServer, module_simulator: RunningSimulator, tmp_path: Path) -> None:
    with live_server.client("admin") as admin:
        for key in KEYS:
            r = admin.post("/characteristics", json={"key": key, "name": key})
            assert r.status_code in (201, 409), r.text
    buffer = tmp_path / "buffer.sqlite"
    config = tmp_path / "agent.yaml"
    config.write_text(yaml.safe_dump({
        "agent": {"name": "edge-live"},
        "server": {"url": live_server.url, "api_key": live_server.agent_key},
        "buffer": {"path": str(buffer)},
        "upload": {"batch_size": 100, "interval_s": 0.2, "backoff_initial_s": 0.1,
                   "backoff_max_s": 0.5},
        "heartbeat": {"interval_s": 1},
        "sources": [{"kind": "opcua", "name": "cnc1", "endpoint": module_simulator.opcua_endpoint,
                     "security": {"policy": "None", "allow_insecure": True},
                     "interval_s": 0.1,
                     "tags": [{"node_id": f"ns=2;s=Line1.CNC1.{v}", "characteristic": k}
                              for v, k in zip(VARIABLES, KEYS, strict=True)]}],
    }))
    log = tmp_path / "agent.log"
    agent = start_agent(config, log)
    try:
        deadline = time.monotonic() + 30
        while (await stored(live_server))[0] < 30:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        live_server.stop()
        time.sleep(0.5)
        depth_down = buffer_state(buffer)[1]
        time.sleep(2.0)
        assert buffer_state(buffer)[1] > depth_down + 30, "the buffer does not grow"
        wait_free(live_server.port)
        live_server.start()
        wait_until(lambda: buffer_state(buffer)[1] < 40, 30, "the backlog to drain")
    finally:
        agent.send_signal(signal.SIGTERM)
        code = agent.wait(timeout=20)
    assert code == 0, log.read_text()
    written, depth = buffer_state(buffer)
    assert depth == 0, log.read_text()
    rows, distinct = await stored(live_server)
    assert rows == distinct == written, (rows, distinct, written)
