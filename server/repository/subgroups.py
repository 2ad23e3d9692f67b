"""Subgroups of consecutive good samples, for Xbar-R and Xbar-S charts."""

from __future__ import annotations

from datetime import datetime

import asyncpg


async def form(conn: asyncpg.Connection, characteristic_id: int, size: int) -> list[datetime]:
    """Group the good samples newer than the newest subgroup into complete subgroups of `size`.

    Returns the new subgroups' timestamps (each subgroup's last sample). Callers hold the
    characteristic's ingest lock. A partial subgroup waits for more samples.
    """
    rows = await conn.fetch(
        """SELECT ts, value FROM measurements
           WHERE characteristic_id = $1 AND quality < 2
             AND ts > coalesce((SELECT max(ts) FROM subgroups WHERE characteristic_id = $1),
                               '-infinity')
           ORDER BY ts""",
        characteristic_id,
    )
    complete = len(rows) // size * size
    records = [
        (characteristic_id, rows[i + size - 1]["ts"], rows[i]["ts"], size,
         [r["value"] for r in rows[i:i + size]])
        for i in range(0, complete, size)
    ]
    if records:
        await conn.copy_records_to_table(
            "subgroups", records=records,
            columns=["characteristic_id", "ts", "first_ts", "n", "vals"],
        )
    return [r[1] for r in records]


async def window(
    conn: asyncpg.Connection, characteristic_id: int, since: datetime, history: int | None
) -> list[asyncpg.Record]:
    """Subgroups from `since` on, preceded by up to `history` earlier ones."""
    return await conn.fetch(
        """(SELECT ts, vals FROM subgroups WHERE characteristic_id = $1 AND ts < $2
            ORDER BY ts DESC LIMIT $3)
           UNION ALL
           (SELECT ts, vals FROM subgroups WHERE characteristic_id = $1 AND ts >= $2)
           ORDER BY ts""",
        characteristic_id, since, history,
    )


async def first(
    conn: asyncpg.Connection, characteristic_id: int, count: int
) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT ts, vals FROM subgroups WHERE characteristic_id = $1 ORDER BY ts LIMIT $2",
        characteristic_id, count,
    )


async def in_range(
    conn: asyncpg.Connection, characteristic_id: int, start: datetime | None,
    end: datetime | None, limit: int,
) -> list[asyncpg.Record]:
    return await conn.fetch(
        """SELECT * FROM (
               SELECT ts, vals FROM subgroups WHERE characteristic_id = $1
                 AND ($2::timestamptz IS NULL OR ts >= $2)
                 AND ($3::timestamptz IS NULL OR ts < $3)
               ORDER BY ts DESC LIMIT $4) recent
           ORDER BY ts""",
        characteristic_id, start, end, limit,
    )
