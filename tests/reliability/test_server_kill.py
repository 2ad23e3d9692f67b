"""kill -9 of the server during sustained ingest from a real agent reading a simulator, then a
restart: every sample the simulator produced is stored once, every violation belongs to exactly
one alarm's point count, and every alarm reached the webhook receiver exactly once after dedupe
by webhook-id."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import httpx
import pytest

from server.core.localdb import LocalCluster
from server.services import webhook_signing
from tests.fixtures.server import start_live_server, wait_free
from tests.reliability.chain import (
    LINE,
    MACHINE,
    RATE_HZ,
    agent_config,
    compare_alarms,
    compare_samples,
    latest_sample_ts,
    setup_chain,
    stored_count,
    wait_caught_up,
)
from tests.security.helpers import ReceiverProcess

pytestmark = pytest.mark.slow


async def test_server_kill9_during_ingest_loses_nothing(
    pg_cluster: LocalCluster, tmp_path: Path, simulator_factory, agent_factory
) -> None:
    server = start_live_server(pg_cluster, tmp_path)
    secret = webhook_signing.new_secret()
    receiver = ReceiverProcess(tmp_path, secret)
    receiver.start()
    conn = await asyncpg.connect(server.dsn)
    try:
        sim = simulator_factory(config=LINE, seed=5, rate=RATE_HZ)
        setup_chain(server, receiver, secret)
        agent = agent_factory(agent_config("rel-kill", server, sim))
        await asyncio.sleep(3)
        sim.inject("x", "shift", magnitude=2.5, machine=MACHINE)  # violations before the kill
        await asyncio.sleep(3)
        before = await stored_count(conn)
        assert before > 0, agent.log
        kills = 0
        for _ in range(2):  # twice, under load: once with a shift active, once after
            server.kill()
            kills += 1
            await asyncio.sleep(3)  # the agent buffers meanwhile
            wait_free(server.port)
            server.start()
            await asyncio.sleep(3)
            sim.clear()
            sim.inject("y", "shift", magnitude=-2.5, machine=MACHINE)
        await asyncio.sleep(2)
        sim.clear()
        until = latest_sample_ts(sim)
        await wait_caught_up(conn, until, timeout=30)
        agent.stop()
        samples = await compare_samples(conn, sim, until)
        alarms = await compare_alarms(conn, receiver)
        metrics = httpx.get(f"{server.url}/metrics").text
    finally:
        await conn.close()
        receiver.stop()
        server.stop()
    assert "spc_webhook_queue{state=\"pending\"} 0" in metrics
    assert alarms["alarms"] > 0 and alarms["violations"] >= alarms["alarms"]
    print(f"server kill -9 x{kills}: samples produced = stored {samples}, {alarms}")
