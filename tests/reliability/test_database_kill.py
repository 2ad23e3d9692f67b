"""The database killed (SIGKILL of the postmaster of a cluster of this test's own) during
sustained ingest: meanwhile the server answers 5xx (never a 4xx, which would make the agent
quarantine a batch) and reports 503 on /health, the agent keeps its samples, and after the
database restarts nothing is lost: produced = stored, violations = alarms' point counts,
alarms = webhooks received once.

The test cluster runs with synchronous_commit=off for speed; this test's database sets it back
to on (the PostgreSQL default, and what production runs), since with it off a crash may lose
commits already acknowledged to the agent: that would be the database configuration losing data,
not the chain."""

from __future__ import annotations

import asyncio
import os
import shutil
import sqlite3
import tempfile
from pathlib import Path

import asyncpg
import httpx
import pytest

from server.core.localdb import LocalCluster
from server.services import webhook_signing
from tests.fixtures.net import free_port
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
    wait_caught_up,
)
from tests.security.helpers import ReceiverProcess
from tests.server.helpers import batch_headers, samples

pytestmark = pytest.mark.slow


async def test_database_kill_during_ingest_loses_nothing(
    tmp_path: Path, simulator_factory, agent_factory
) -> None:
    base = Path(tempfile.mkdtemp(prefix="spc-rel-pg-"))
    os.chmod(base, 0o755)
    cluster = LocalCluster(base / "pg", free_port())
    cluster.start()
    server = None
    receiver = None
    try:
        server = start_live_server(cluster, tmp_path)
        admin = await asyncpg.connect(cluster.dsn())
        dbname = server.dsn.rsplit("/", 1)[1]
        await admin.execute(f'ALTER DATABASE "{dbname}" SET synchronous_commit = on')
        await admin.close()
        server.stop()
        server.start()  # pool connections pick the database setting up
        secret = webhook_signing.new_secret()
        receiver = ReceiverProcess(tmp_path, secret)
        receiver.start()
        sim = simulator_factory(config=LINE, seed=6, rate=RATE_HZ)
        setup_chain(server, receiver, secret)
        agent = agent_factory(agent_config("rel-db", server, sim))
        await asyncio.sleep(3)
        sim.inject("x", "shift", magnitude=2.5, machine=MACHINE)
        await asyncio.sleep(2)

        cluster.kill()
        outage: list[int] = []
        health: list[int] = []
        for i in range(8):  # ~4 s of outage, probed by hand as the agent sees it
            r = httpx.post(f"{server.url}/api/v1/ingest", timeout=10,
                           json={"samples": samples("rel_x", [10.0], start=i)},
                           headers=batch_headers(server.headers("agent")))
            outage.append(r.status_code)
            health.append(httpx.get(f"{server.url}/api/v1/health", timeout=10).status_code)
            await asyncio.sleep(0.5)
        cluster.start()
        await asyncio.sleep(3)
        sim.clear()
        await asyncio.sleep(1)
        until = latest_sample_ts(sim)
        conn = await asyncpg.connect(server.dsn)
        try:
            await wait_caught_up(conn, until, timeout=40)
            # the hand probes (2026-01-05) are outside the compared window; remove them first
            await conn.execute("DELETE FROM measurements WHERE ts < '2026-06-01'")
            agent.stop()
            counts = await compare_samples(conn, sim, until)
            alarms = await compare_alarms(conn, receiver, timeout=30)
        finally:
            await conn.close()
        buffer = sqlite3.connect(tmp_path / "rel-db-buffer.sqlite")
        quarantined = buffer.execute("SELECT count(*) FROM quarantine").fetchone()[0]
        buffer.close()
        log = agent.log
    finally:
        if receiver:
            receiver.stop()
        if server:
            server.kill()
        cluster.stop("immediate")
        shutil.rmtree(base, ignore_errors=True)
    assert outage and all(s >= 500 for s in outage), f"ingest during the outage: {outage}"
    assert all(s == 503 for s in health), health
    assert quarantined == 0, log[-3000:]
    print(f"database kill -9: ingest answered {sorted(set(outage))} during the outage, "
          f"samples {counts}, {alarms}")
