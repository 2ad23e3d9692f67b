"""Rollups and retention (`spc db maintain`), with TimescaleDB and with plain PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest

from server.core.localdb import LocalCluster
from tests.fixtures.server import ROOT, start_live_server
from tests.server.helpers import batch_headers


def old_samples(key: str, now: datetime) -> list[dict]:
    """Three samples in one hour of each of the last ten days, half a day away from where a
    five-day retention cuts, however long the test takes to get there."""
    out = []
    hour = now.replace(minute=0, second=0, microsecond=0)
    for day in range(10, 0, -1):
        for k, value in enumerate((1.0, 2.0, 3.0)):
            ts = hour - timedelta(days=day, hours=12) + timedelta(minutes=10 + k)
            out.append({"characteristic": key, "ts": ts.isoformat(), "value": value})
    return out


@pytest.mark.parametrize("mode", ["timescaledb", "plain"])
async def test_maintain_rolls_up_then_applies_retention(
    pg_cluster: LocalCluster, tmp_path: Path, mode: str
) -> None:
    env = {"SPC_TIMESCALEDB": "off"} if mode == "plain" else {}
    server = start_live_server(pg_cluster, tmp_path, **env)
    try:
        with server.client("engineer") as c:
            c.post("/characteristics", json={"key": "m", "name": "m", "baseline_points": 0})
        now = datetime.now(UTC)
        r = httpx.post(f"{server.url}/api/v1/ingest", json={"samples": old_samples("m", now)},
                       headers=batch_headers(server.headers("agent")))
        assert r.status_code == 200 and r.json()["accepted"] == 30
        proc = subprocess.run(
            [sys.executable, "-m", "spc_cli.main", "db", "maintain", "--retention-days", "5",
             "--database-url", server.dsn],
            capture_output=True, text=True, cwd=ROOT, env={**os.environ, **env},
        )
        assert proc.returncode == 0, proc.stderr
        with server.client("operator") as c:
            hours = c.get("/characteristics/m/rollups").json()
        assert [h["n"] for h in hours] == [3] * 10  # every day's hour, dropped or not
        assert all(h["mean"] == pytest.approx(2.0) and h["min"] == 1.0 for h in hours)
        conn = await asyncpg.connect(server.dsn)
        try:
            left = await conn.fetchval("SELECT min(ts) FROM measurements")
            count = await conn.fetchval("SELECT count(*) FROM measurements")
        finally:
            await conn.close()
        cutoff = now - timedelta(days=5)
        if mode == "plain":
            assert count == 12 and left >= cutoff  # the samples 1.5 to 4.5 days old
        else:
            # drop_chunks removes whole one-day chunks entirely older than the cutoff
            assert left >= cutoff - timedelta(days=1) and 12 <= count <= 15
    finally:
        server.stop()


def test_maintain_bad_input() -> None:
    proc = subprocess.run([sys.executable, "-m", "spc_cli.main", "db", "maintain",
                           "--retention-days", "-1"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2 and "--retention-days must be >= 0" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "spc_cli.main", "db", "maintain",
                           "--retention-days", "x"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2 and "invalid float value" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "spc_cli.main", "db", "maintain",
                           "--database-url", "postgresql://nobody@127.0.0.1:1/x"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 1 and "cannot use the database" in proc.stderr
