"""Control-limit versions: append-only, each effective from a timestamp."""

from __future__ import annotations

from datetime import datetime

import asyncpg

COLUMNS = ("version, center, sigma, ucl, lcl, mr_center, mr_ucl, effective_from, created_at, "
           "created_by, reason")


async def versions(conn: asyncpg.Connection, characteristic_id: int) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"SELECT {COLUMNS} FROM control_limits WHERE characteristic_id = $1 ORDER BY version",
        characteristic_id,
    )


async def versions_for(
    conn: asyncpg.Connection, characteristic_ids: list[int]
) -> dict[int, list[asyncpg.Record]]:
    rows = await conn.fetch(
        f"""SELECT characteristic_id, {COLUMNS} FROM control_limits
            WHERE characteristic_id = ANY($1) ORDER BY characteristic_id, version""",
        characteristic_ids,
    )
    out: dict[int, list[asyncpg.Record]] = {cid: [] for cid in characteristic_ids}
    for r in rows:
        out[r["characteristic_id"]].append(r)
    return out


async def latest_by_characteristic(conn: asyncpg.Connection) -> dict[int, asyncpg.Record]:
    rows = await conn.fetch(
        f"""SELECT DISTINCT ON (characteristic_id) characteristic_id, {COLUMNS}
            FROM control_limits ORDER BY characteristic_id, version DESC"""
    )
    return {r["characteristic_id"]: r for r in rows}


async def add_version(
    conn: asyncpg.Connection, characteristic_id: int, *, center: float, sigma: float,
    ucl: float, lcl: float, mr_center: float | None, mr_ucl: float | None,
    effective_from: datetime, created_by: str, reason: str,
) -> asyncpg.Record:
    return await conn.fetchrow(
        f"""INSERT INTO control_limits (characteristic_id, version, center, sigma, ucl, lcl,
                                        mr_center, mr_ucl, effective_from, created_by, reason)
            VALUES ($1, (SELECT coalesce(max(version), 0) + 1 FROM control_limits
                         WHERE characteristic_id = $1),
                    $2, $3, $4, $5, $6, $7, $8, $9, $10)
            RETURNING {COLUMNS}""",
        characteristic_id, center, sigma, ucl, lcl, mr_center, mr_ucl, effective_from,
        created_by, reason,
    )
