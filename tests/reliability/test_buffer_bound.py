"""The agent's buffer full while the server is away: the configured bound (buffer.max_samples)
holds, the oldest samples are dropped and the newest kept, and the number dropped reaches the
server in the heartbeat (`agents.dropped`) and accounts exactly for what is missing:
produced = stored + dropped."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from server.core.localdb import LocalCluster
from tests.e2e.chain import parse_ts
from tests.fixtures.server import start_live_server, wait_free
from tests.reliability.chain import (
    LINE,
    MACHINE,
    RATE_HZ,
    VARIABLES,
    agent_config,
    key,
    latest_sample_ts,
    wait_caught_up,
    wait_for,
)

BOUND = 200
DOWN_S = 15.0  # 2 variables x 10 Hz x 15 s = 300 samples into a 200-sample buffer

pytestmark = pytest.mark.slow


async def test_full_buffer_drops_oldest_and_reports_them(
    pg_cluster: LocalCluster, tmp_path: Path, simulator_factory, agent_factory
) -> None:
    server = start_live_server(pg_cluster, tmp_path)
    conn = await asyncpg.connect(server.dsn)
    buffer_path = tmp_path / "rel-bound-buffer.sqlite"
    try:
        with server.client("engineer") as c:
            for v in VARIABLES:
                r = c.post("/characteristics", json={"key": key(v), "name": v,
                                                     "baseline_points": 0})
                assert r.status_code == 201, r.text
        sim = simulator_factory(config=LINE, seed=8, rate=RATE_HZ)
        cfg = agent_config("rel-bound", server, sim)
        cfg["buffer"] = {"path": str(buffer_path), "max_samples": BOUND}
        cfg["upload"]["batch_size"] = 50
        agent = agent_factory(cfg)
        await asyncio.sleep(3)
        server.kill()
        killed_at = datetime.now(UTC)
        depths = []
        deadline = time.monotonic() + DOWN_S
        while time.monotonic() < deadline:  # the bound holds throughout
            await asyncio.sleep(1)
            db = sqlite3.connect(f"file:{buffer_path}?mode=ro", uri=True, timeout=5)
            depths.append(db.execute("SELECT count(*) FROM samples").fetchone()[0])
            db.close()
        restart_at = datetime.now(UTC)
        wait_free(server.port)
        server.start()
        until = latest_sample_ts(sim)
        await wait_caught_up(conn, until, timeout=30)

        def local_dropped() -> int:
            db = sqlite3.connect(f"file:{buffer_path}?mode=ro", uri=True, timeout=5)
            try:
                return db.execute("SELECT value FROM counters WHERE name='dropped'").fetchone()[0]
            finally:
                db.close()

        async def reported() -> bool:
            # drops go on while the backlog drains; the heartbeat (every 1 s) catches up
            row = await conn.fetchrow("SELECT dropped FROM agents WHERE name = 'rel-bound'")
            return row is not None and row["dropped"] > 0 and row["dropped"] == local_dropped()

        await wait_for(reported, 15, "a heartbeat with the buffer's dropped count")
        agent.stop()
        dropped_local = local_dropped()
        dropped_reported = await conn.fetchval(
            "SELECT dropped FROM agents WHERE name = 'rel-bound'")
        produced = stored = 0
        missing_all = []
        runs: list[bool] = []
        for v in VARIABLES:
            rows = await conn.fetch(
                "SELECT m.ts FROM measurements m JOIN characteristics c ON c.id = "
                "m.characteristic_id WHERE c.key = $1 AND m.ts <= $2 ORDER BY m.ts", key(v), until)
            first = rows[0]["ts"]
            made = {parse_ts(h["ts"]) for h in sim.history(v, machine=MACHINE, limit=5000)
                    if first <= parse_ts(h["ts"]) <= until}
            have = {r["ts"] for r in rows}
            assert have <= made
            produced += len(made)
            stored += len(have)
            order = sorted(made)
            gap = [i for i, t in enumerate(order) if t not in have]
            # the oldest were dropped: one run of consecutive samples, nothing kept inside it
            if gap:
                runs.append(gap[-1] - gap[0] + 1 == len(gap))
            missing_all += [order[i] for i in gap]
    finally:
        await conn.close()
        server.stop()
    assert max(depths) <= BOUND, depths
    assert dropped_local > 0
    assert produced == stored + dropped_local, (produced, stored, dropped_local)
    # nothing was dropped after the backlog drained, so the last heartbeat has the final count
    assert dropped_reported == dropped_local, (dropped_reported, dropped_local)
    # what is missing was produced during the outage (or while its backlog drained), as one
    # run of consecutive samples per variable: the oldest not yet in a batch were dropped
    assert runs and all(runs), runs
    assert all(killed_at - timedelta(seconds=2) <= t <= restart_at + timedelta(seconds=15)
               for t in missing_all), (killed_at, restart_at, missing_all[:3], missing_all[-3:])
    print(f"buffer bound {BOUND}: depth peaked at {max(depths)} during {DOWN_S:.0f} s away; "
          f"produced {produced} = stored {stored} + dropped {dropped_local} "
          f"(reported in heartbeat: {dropped_reported})")
