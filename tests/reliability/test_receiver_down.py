"""The webhook receiver drops (connections refused) for several seconds while alarms keep
coming: the server retries with backoff (attempts bounded by the schedule, not a busy loop),
ingest goes on, and when the receiver is back every alarm is delivered exactly once after dedupe
by webhook-id."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncpg
import httpx
import pytest

from server.core.localdb import LocalCluster
from server.services import webhook_signing
from tests.fixtures.server import start_live_server
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

DOWN_S = 8.0

pytestmark = pytest.mark.slow


def failed_attempts(server_url: str) -> int:
    for line in httpx.get(f"{server_url}/metrics", timeout=10).text.splitlines():
        if line.startswith("spc_webhook_failed_attempts_total "):
            return int(float(line.split()[1]))
    raise AssertionError("no spc_webhook_failed_attempts_total in /metrics")


async def test_receiver_down_then_back_gets_everything_once(
    pg_cluster: LocalCluster, tmp_path: Path, simulator_factory, agent_factory
) -> None:
    # retries every 0.2 s doubling to 1 s, 40 attempts: rides out a receiver outage of ~35 s
    server = start_live_server(pg_cluster, tmp_path, SPC_WEBHOOK_MAX_ATTEMPTS="40")
    secret = webhook_signing.new_secret()
    receiver = ReceiverProcess(tmp_path, secret)
    receiver.start()
    conn = await asyncpg.connect(server.dsn)
    try:
        sim = simulator_factory(config=LINE, seed=7, rate=RATE_HZ)
        setup_chain(server, receiver, secret)
        agent = agent_factory(agent_config("rel-hook", server, sim))
        await asyncio.sleep(2)
        sim.inject("x", "shift", magnitude=2.5, machine=MACHINE)
        await asyncio.sleep(2)
        receiver.stop()
        down_at = time.monotonic()
        stored_before = await stored_count(conn)
        await asyncio.sleep(DOWN_S)
        down_for = time.monotonic() - down_at
        stored_during = await stored_count(conn) - stored_before
        waiting = await conn.fetch(
            "SELECT attempts, last_error FROM webhook_outbox WHERE state = 'pending'")
        failures = failed_attempts(server.url)
        receiver.start()
        await asyncio.sleep(2)
        sim.clear()
        until = latest_sample_ts(sim)
        await wait_caught_up(conn, until, timeout=30)
        agent.stop()
        counts = await compare_samples(conn, sim, until)
        alarms = await compare_alarms(conn, receiver, timeout=30)
        dead = await conn.fetchval("SELECT count(*) FROM webhook_outbox WHERE state = 'dead'")
    finally:
        await conn.close()
        receiver.stop()
        server.stop()
    # ingest went on while the receiver was down (10 Hz x 2 variables)
    assert stored_during >= 0.5 * RATE_HZ * 2 * DOWN_S, stored_during
    # deliveries waited and were retried, with backoff: at most one attempt per
    # 0.2, 0.4, 0.8, 1, 1, ... s (with +-20 % jitter) in the outage
    assert waiting, "no delivery was pending while the receiver was down"
    assert all("Connect" in (w["last_error"] or "") for w in waiting if w["attempts"]), waiting
    most = max(w["attempts"] for w in waiting)
    assert 3 <= most <= down_for / 0.8 + 4, (most, down_for)
    assert failures >= most
    assert dead == 0
    print(f"receiver down {down_for:.1f} s: {len(waiting)} deliveries waiting, up to {most} "
          f"attempts each, {failures} failed attempts in all; samples {counts}; {alarms}")
