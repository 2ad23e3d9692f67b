"""The agent's buffer on a filesystem that fills up while the server is away (a 384 KiB tmpfs
mounted for this test; once the server is gone, a filler file takes every free byte, as a
runaway log file would): the agent keeps running and keeps uploading once it can, makes room
by dropping its oldest samples, counts them as dropped and reports the count in its heartbeat;
when the space is freed and the server is back, the buffer drains and new samples flow again:
produced = stored + dropped, exactly.

Nothing here waits a fixed time for the agent to get somewhere: each step waits (with a
generous timeout) for the state it needs, so a slow machine makes the test slower, not red."""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import sqlite3
import subprocess
from datetime import datetime
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

SIZE = "384k"


@pytest.fixture
def small_fs(tmp_path: Path):
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(path: Path) -> int:
    """Write zeros to `path` until the filesystem is full; returns the bytes written."""
    written = 0
    chunk = bytes(4096)
    with open(path, "wb", buffering=0) as f:
        while True:
            try:
                written += f.write(chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                return written


def local_counts(buffer_path: Path) -> tuple[int, int]:
    """(dropped, depth) as saved in the buffer file."""
    db = sqlite3.connect(f"file:{buffer_path}?mode=ro", uri=True, timeout=5)
    try:
        dropped = db.execute("SELECT value FROM counters WHERE name='dropped'").fetchone()[0]
        depth = db.execute("SELECT count(*) FROM samples").fetchone()[0]
    finally:
        db.close()
    return dropped, depth


@pytest.mark.slow
async def test_disk_full_buffer(pg_cluster: LocalCluster, tmp_path: Path, small_fs: Path,
                                simulator_factory, agent_factory) -> None:
    server = start_live_server(pg_cluster, tmp_path)
    conn = await asyncpg.connect(server.dsn)
    buffer_path = small_fs / "buffer.sqlite"
    filler = small_fs / "filler"
    collecting: asyncio.Task[None] | None = None
    try:
        with server.client("engineer") as c:
            for v in VARIABLES:
                assert c.post("/characteristics", json={"key": key(v), "name": v,
                                                        "baseline_points": 0}).status_code == 201
        # 5 times the usual rate, so that the agent's own slack on the full disk (its reserve
        # file, free pages) is used up within seconds
        sim = simulator_factory(config=LINE, seed=9, rate=RATE_HZ * 5)
        cfg = agent_config("rel-disk", server, sim)
        cfg["sources"][0]["interval_s"] = 0.02  # the subscription samples at the same rate
        cfg["buffer"] = {"path": str(buffer_path), "max_samples": 1_000_000}
        agent = agent_factory(cfg)
        # The simulator keeps the last 2000 samples per variable (40 s at this rate): collect
        # them as the test goes, so that a slow run still knows every sample produced.
        produced_ts: dict[str, set[datetime]] = {v: set() for v in VARIABLES}

        def collect() -> None:
            for v in VARIABLES:
                produced_ts[v].update(parse_ts(h["ts"])
                                      for h in sim.history(v, machine=MACHINE, limit=2000))

        async def collector() -> None:
            while True:
                await asyncio.to_thread(collect)
                await asyncio.sleep(5)

        collecting = asyncio.create_task(collector())

        async def delivering() -> bool:
            return await conn.fetchval("SELECT count(*) FROM measurements") > 0

        await wait_for(delivering, 30, "the first samples stored")
        server.kill()
        # Full when fill() returns (ENOSPC); not checked again with statvfs, since the agent
        # may already have freed some of its own space by then.
        filled = fill(filler)

        async def dropping() -> bool:
            return "disk full, dropped" in agent.log or agent.process.poll() is not None

        # samples keep coming: the agent must make room for them by dropping the oldest
        await wait_for(dropping, 60, "the agent dropping samples on the full disk")
        await asyncio.sleep(3)  # and go on doing so for a while
        alive_while_full = agent.process.poll() is None
        dropped_while_full, _ = local_counts(buffer_path)
        filler.unlink()  # the operator frees the space
        wait_free(server.port)
        server.start()
        until = latest_sample_ts(sim)
        try:
            await wait_caught_up(conn, until, timeout=30)
        except AssertionError as exc:
            agent.kill()
            raise AssertionError(f"{exc}; agent log:\n{agent.log[-3000:]}") from None

        async def reported() -> bool:
            row = await conn.fetchrow("SELECT dropped FROM agents WHERE name = 'rel-disk'")
            return row is not None and row["dropped"] == local_counts(buffer_path)[0]

        await wait_for(reported, 15, "a heartbeat with the buffer's dropped count")
        alive = agent.process.poll() is None
        collect()
        agent.stop()
        exit_code = agent.process.returncode
        dropped, depth = local_counts(buffer_path)
        reported_dropped = await conn.fetchval("SELECT dropped FROM agents WHERE name = 'rel-disk'")
        produced = stored = 0
        for v in VARIABLES:
            rows = await conn.fetch(
                "SELECT m.ts FROM measurements m JOIN characteristics c ON c.id = "
                "m.characteristic_id WHERE c.key = $1 AND m.ts <= $2", key(v), until)
            first = min(r["ts"] for r in rows)
            made = {t for t in produced_ts[v] if first <= t <= until}
            have = {r["ts"] for r in rows}
            assert have <= made
            produced += len(made)
            stored += len(have)
        log = agent.log
    finally:
        if collecting is not None:
            collecting.cancel()
            await asyncio.gather(collecting, return_exceptions=True)
        await conn.close()
        server.stop()
    assert alive_while_full and alive, log[-3000:]
    assert exit_code == 0, log[-3000:]
    assert "task uploader failed" not in log, log[-3000:]
    assert dropped_while_full > 0
    # nothing was dropped after the space came back, so the last heartbeat has the final count
    assert reported_dropped == dropped
    assert produced == stored + dropped, (produced, stored, dropped, log[-2000:])
    print(f"disk full ({SIZE} tmpfs, {filled // 1024} KiB filler): produced {produced} = "
          f"stored {stored} + dropped {dropped} (reported in heartbeat: {reported_dropped}); "
          f"{depth} left in the buffer")
