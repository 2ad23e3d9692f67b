"""Helpers the end-to-end scenarios share: reading what the chain stored, and what spc_core finds
on the simulator's own samples (the oracle the stored violations are compared with)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import numpy as np

from spc_core.charts.variables import ProcessParams
from spc_core.phases import score
from tests.fixtures.server import LiveServer

LINE = Path(__file__).with_name("disturbance_line.yaml")
MACHINE = "M1"
MEAN, SIGMA = 100.0, 1.0  # every variable of LINE


def parse_ts(s: str) -> datetime:
    """A simulator timestamp as the chain carries it: the ingest contract's timestamps have
    milliseconds (the agent truncates the source timestamp's microseconds)."""
    t = datetime.fromisoformat(s.replace("Z", "+00:00"))
    return t.replace(microsecond=t.microsecond // 1000 * 1000)


def same_value(a: float | None, b: float | None) -> bool:
    """The stored value is the value read, exactly (the agent's batch JSON carries 17
    significant digits: edge_agent commit eddb0e8; before it, SQLite printed 15 and the last
    bits of a double were lost)."""
    return a == b


def oracle(values: list[float], ts: list[datetime], rules: str) -> set[tuple[str, datetime]]:
    """What spc_core finds on an individuals series against the process standard: the primary
    chart's rules and rule 1 on the moving-range chart, as the server evaluates an I-MR chart."""
    if not values:
        return set()
    charts = score("imr", np.array(values, dtype=float), ProcessParams(mean=MEAN, sigma=SIGMA))
    found = {**charts["i"].evaluate(rules),
             **{f"mr:{r}": idx for r, idx in charts["mr"].evaluate(None).items()}}
    return {(rule, ts[int(i)]) for rule, idx in found.items() for i in idx}


async def stored(conn: asyncpg.Connection, key: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT m.ts, m.value, m.quality FROM measurements m JOIN characteristics c "
        "ON c.id = m.characteristic_id WHERE c.key = $1 ORDER BY m.ts", key)


async def violations(conn: asyncpg.Connection, key: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT v.rule, v.ts, v.alarm_id FROM violations v JOIN characteristics c "
        "ON c.id = v.characteristic_id WHERE c.key = $1 ORDER BY v.ts, v.rule", key)


async def wait_for(predicate: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.25)


def create_characteristics(server: LiveServer, keys: dict[str, str]) -> None:
    """`keys`: characteristic key -> rule set; limits are the process standard (phase II)."""
    with server.client("engineer") as c:
        for key, rules in keys.items():
            r = c.post("/characteristics", json={"key": key, "name": key, "unit": "mm",
                                                 "rules": rules, "baseline_points": 0})
            assert r.status_code == 201, r.text
            r = c.post(f"/characteristics/{key}/limits", json={
                "center": MEAN, "sigma": SIGMA, "reason": "process standard (line YAML)",
                "effective_from": (datetime.now(UTC) - timedelta(hours=1)).isoformat()})
            assert r.status_code == 201, r.text


def subscribe_webhook(server: LiveServer, url: str) -> str:
    with server.client("admin") as c:
        r = c.post("/webhooks", json={"url": url})
        assert r.status_code == 201, r.text
        return r.json()["secret"]


def map_modbus(rows: list[asyncpg.Record], history: list[dict[str, Any]]) -> list[int | None]:
    """The simulator sample index of each stored Modbus row: its value is the float32 image of
    that sample's value, and indices never go back (None for bad rows). A value equal to the
    previous row's is taken as the next sample with that value (a stuck sensor) if there is one,
    else as the same sample read twice."""
    # Compared as float32: what the register held.
    f32 = [None if h["value"] is None else np.float32(h["value"]) for h in history]
    out: list[int | None] = []
    pos = -1
    for r in rows:
        if r["quality"] == 2:
            out.append(None)
            continue
        v = np.float32(r["value"])
        j = next((j for j in range(pos + 1, len(history)) if f32[j] == v), None)
        if j is None and pos >= 0 and f32[pos] == v:
            j = pos
        assert j is not None, (f"stored Modbus value {r['value']!r} at {r['ts']} is no simulator "
                               f"sample after index {history[max(pos, 0)]['index']}")
        out.append(history[j]["index"])
        pos = j
    return out
