"""Characteristics: what is measured, how it is charted, and its spec limits."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

COLUMNS = """id, key, name, unit, chart_type, subgroup_size, subgrouping, subgroup_window_s,
    sample_size,
    options::text AS options, lsl, usl,
    target, rules, baseline_points,
    (SELECT key FROM stations WHERE id = station_id) AS station"""


async def create(conn: asyncpg.Connection, data: dict[str, Any]) -> asyncpg.Record:
    return await conn.fetchrow(
        f"""INSERT INTO characteristics (key, name, unit, chart_type, lsl, usl, target, rules,
                                        baseline_points, station_id, subgroup_size, options,
                                        subgrouping, subgroup_window_s, sample_size)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12::jsonb, $13, $14, $15)
            ON CONFLICT (key) DO NOTHING
            RETURNING {COLUMNS}""",
        data["key"], data["name"], data["unit"], data["chart_type"], data["lsl"], data["usl"],
        data["target"], data["rules"], data["baseline_points"], data.get("station_id"),
        data.get("subgroup_size", 1), json.dumps(data.get("options") or {}),
        data.get("subgrouping", "consecutive"), data.get("subgroup_window_s"),
        data.get("sample_size"),
    )


async def get(conn: asyncpg.Connection, key: str) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {COLUMNS} FROM characteristics WHERE key = $1", key)


async def list_all(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(f"SELECT {COLUMNS} FROM characteristics ORDER BY key")


async def update(conn: asyncpg.Connection, key: str, changes: dict[str, Any]) -> asyncpg.Record:
    assignments = ", ".join(f"{col} = ${i + 2}" for i, col in enumerate(changes))
    return await conn.fetchrow(
        f"UPDATE characteristics SET {assignments}, updated_at = now() WHERE key = $1 "
        f"RETURNING {COLUMNS}",
        key, *changes.values(),
    )


async def lock_for_ingest(
    conn: asyncpg.Connection, keys: list[str], lock_class: int
) -> dict[str, asyncpg.Record]:
    """In one statement, inside the caller's transaction: the characteristics with these keys
    (absent keys are unknown), held with KEY SHARE (none can be deleted before the transaction
    ends; one being deleted is waited for, then unknown), the advisory lock (lock_class, id) of
    each, taken in id order, and plan caching back on for the rest of the transaction."""
    rows = await conn.fetch(
        f"""WITH held AS (SELECT {COLUMNS} FROM characteristics WHERE key = ANY($2::text[])
                          ORDER BY id FOR KEY SHARE),
                 locked AS (SELECT set_config('plan_cache_mode', 'auto', true) AS plans,
                                   count(pg_advisory_xact_lock($1, id)) AS ids
                            FROM (SELECT id FROM held ORDER BY id) AS ordered)
            SELECT held.* FROM held CROSS JOIN locked""",
        lock_class, keys,
    )
    return {r["key"]: r for r in rows}
