"""The chain the reliability tests break: simulator (OPC UA subscription, every sample with its
source timestamp) → a real agent → the server → TimescaleDB → SPC → alarms → webhooks to
docs/webhook_receiver.py (signature verified, deduplicated by webhook-id). And the end-to-end
count comparisons made after each fault."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from tests.e2e.chain import parse_ts
from tests.fixtures.server import LiveServer
from tests.fixtures.simulators import RunningSimulator
from tests.security.helpers import ReceiverProcess

LINE = Path(__file__).with_name("line.yaml")
MACHINE = "M1"
VARIABLES = ["x", "y"]
RATE_HZ = 10.0


def key(variable: str) -> str:
    return f"rel_{variable}"


def setup_chain(server: LiveServer, receiver: ReceiverProcess, secret: str) -> None:
    with server.client("engineer") as c:
        for v in VARIABLES:
            r = c.post("/characteristics", json={"key": key(v), "name": v, "unit": "mm",
                                                 "rules": "we", "baseline_points": 0})
            assert r.status_code == 201, r.text
            r = c.post(f"/characteristics/{key(v)}/limits", json={
                "center": 10.0, "sigma": 1.0, "reason": "process standard",
                "effective_from": (datetime.now(UTC) - timedelta(hours=1)).isoformat()})
            assert r.status_code == 201, r.text
    with server.client("admin") as c:
        r = c.post("/webhooks", json={"url": receiver.url, "secret": secret})
        assert r.status_code == 201, r.text


def agent_config(name: str, server: LiveServer, sim: RunningSimulator, **extra: Any
                 ) -> dict[str, Any]:
    return {
        "agent": {"name": name},
        "server": {"url": server.url, "api_key": server.agent_key, "timeout_s": 3},
        "upload": {"batch_size": 200, "interval_s": 0.2, "backoff_initial_s": 0.2,
                   "backoff_max_s": 1.0},
        "heartbeat": {"interval_s": 1},
        "sources": [{
            "kind": "opcua", "name": "m1", "endpoint": sim.opcua_endpoint, "mode": "subscribe",
            "security": {"policy": "None", "allow_insecure": True},
            "interval_s": 0.1, "queue_size": 50,
            "tags": [{"node_id": f"ns=2;s=REL.{MACHINE}.{v}", "characteristic": key(v)}
                     for v in VARIABLES]}],
        **extra,
    }


async def wait_for(predicate: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.2)


async def stored_count(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM measurements"))


async def newest(conn: asyncpg.Connection, k: str) -> datetime | None:
    return await conn.fetchval(
        "SELECT max(m.ts) FROM measurements m JOIN characteristics c "
        "ON c.id = m.characteristic_id WHERE c.key = $1", k)


def latest_sample_ts(sim: RunningSimulator) -> datetime:
    """The timestamp of the newest sample the simulator has produced (every variable)."""
    return min(parse_ts(sim.history(v, machine=MACHINE, limit=1)[-1]["ts"]) for v in VARIABLES)


async def wait_caught_up(conn: asyncpg.Connection, until: datetime, timeout: float) -> None:
    async def done() -> bool:
        for v in VARIABLES:
            n = await newest(conn, key(v))
            if n is None or n < until:
                return False
        return True

    await wait_for(done, timeout, f"every sample up to {until} stored")


async def compare_samples(conn: asyncpg.Connection, sim: RunningSimulator, until: datetime
                          ) -> dict[str, int]:
    """Every sample the simulator produced from the first stored one up to `until` is stored
    once, with its value, and nothing else is. Returns the count per characteristic."""
    counts = {}
    for v in VARIABLES:
        rows = await conn.fetch(
            "SELECT m.ts, m.value FROM measurements m JOIN characteristics c "
            "ON c.id = m.characteristic_id WHERE c.key = $1 AND m.ts <= $2 ORDER BY m.ts",
            key(v), until)
        assert rows, f"{key(v)}: nothing stored"
        first = rows[0]["ts"]
        produced = {parse_ts(h["ts"]): h["value"]
                    for h in sim.history(v, machine=MACHINE, limit=5000)
                    if first <= parse_ts(h["ts"]) <= until}
        stored = {r["ts"]: r["value"] for r in rows}
        missing = sorted(set(produced) - set(stored))
        extra = sorted(set(stored) - set(produced))
        assert not missing, f"{key(v)}: {len(missing)} produced samples not stored: {missing[:5]}"
        assert not extra, f"{key(v)}: {len(extra)} stored rows the simulator never produced"
        assert len(rows) == len(stored)
        for ts, value in produced.items():
            assert abs(stored[ts] - value) <= 1e-9 * max(1.0, abs(value)), (ts, value, stored[ts])
        counts[key(v)] = len(produced)
    return counts


async def compare_alarms(conn: asyncpg.Connection, receiver: ReceiverProcess,
                         timeout: float = 20) -> dict[str, int]:
    """Call with the agent stopped. Violations = the alarms' point counts (each alarm's
    point_count equals its violation rows); every alarm's alarm.opened event reached the
    receiver exactly once after dedupe."""
    bad = await conn.fetch(
        "SELECT a.id, a.point_count, count(v.ts) AS n FROM alarms a "
        "LEFT JOIN violations v ON v.alarm_id = a.id WHERE a.kind = 'spc' "
        "GROUP BY a.id HAVING a.point_count <> count(v.ts)")
    assert not bad, f"alarms whose point_count differs from their violations: {bad[:5]}"
    violations = int(await conn.fetchval("SELECT count(*) FROM violations"))
    points = int(await conn.fetchval(
        "SELECT coalesce(sum(point_count), 0) FROM alarms WHERE kind = 'spc'"))
    assert violations == points
    expected: set[str] = set()

    async def all_delivered() -> bool:
        nonlocal expected
        rows = await conn.fetch("SELECT id FROM alarms")
        expected = {f"alarm-{r['id']}-opened" for r in rows}
        pending = await conn.fetchval(
            "SELECT count(*) FROM webhook_outbox WHERE state <> 'delivered'")
        return pending == 0 and {e["webhook_id"] for e in receiver.events()} >= expected

    await wait_for(all_delivered, timeout, "every webhook delivered")
    received = [e["webhook_id"] for e in receiver.events()]
    assert len(received) == len(set(received)), "the receiver processed an event twice"
    assert set(received) == expected, (sorted(set(received) ^ expected)[:10])
    outbox = await conn.fetchval("SELECT count(DISTINCT event_id) FROM webhook_outbox")
    assert outbox == len(expected)
    stats = receiver.stats()
    assert stats["rejected"] == 0, stats  # (the counts restart with the receiver)
    return {"violations": violations, "alarms": len(expected),
            "webhooks_processed": len(received),
            "duplicates_refused": stats["duplicates"]}
