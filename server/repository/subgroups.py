"""Subgroups of consecutive good samples, for Xbar-R and Xbar-S charts."""

from __future__ import annotations

from datetime import datetime

import asyncpg


async def form(
    conn: asyncpg.Connection, characteristic_id: int, mode: str, size: int,
    window_s: float | None,
) -> list[datetime]:
    """Close the subgroups that the good samples newer than the newest subgroup complete.

    consecutive: every `size` samples. part: the samples of one part_id, closed when a sample of
    another part arrives. time: the samples of one `window_s`-second window (aligned to the Unix
    epoch), closed when a sample of a later window arrives. A subgroup still open waits for
    more samples. Returns the new subgroups' timestamps (each one's last sample). Callers hold
    the characteristic's ingest lock.
    """
    # The newest subgroup's time first, as a value: a bound the planner sees leaves out every
    # older chunk of the hypertable (as a subquery it planned and opened all of them).
    newest = await conn.fetchval(
        "SELECT coalesce(max(ts), '-infinity') FROM subgroups WHERE characteristic_id = $1",
        characteristic_id,
    )
    rows = await conn.fetch(
        """SELECT ts, value, part_id FROM measurements
           WHERE characteristic_id = $1 AND quality < 2 AND ts > $2 ORDER BY ts""",
        characteristic_id, newest,
    )
    groups = closed_groups(rows, mode, size, window_s)
    records = [
        (characteristic_id, g[-1]["ts"], g[0]["ts"], len(g), [r["value"] for r in g])
        for g in groups
    ]
    if records:
        await conn.copy_records_to_table(
            "subgroups", records=records,
            columns=["characteristic_id", "ts", "first_ts", "n", "vals"],
        )
    return [r[1] for r in records]


def closed_groups(
    rows: list[asyncpg.Record], mode: str, size: int, window_s: float | None
) -> list[list[asyncpg.Record]]:
    if mode == "consecutive":
        complete = len(rows) // size * size
        return [rows[i:i + size] for i in range(0, complete, size)]
    if mode == "part":
        key = [r["part_id"] for r in rows]
    else:
        assert window_s is not None
        key = [int(r["ts"].timestamp() // window_s) for r in rows]
    groups: list[list[asyncpg.Record]] = []
    for i, row in enumerate(rows):
        if i and key[i] == key[i - 1]:
            groups[-1].append(row)
        else:
            groups.append([row])
    return groups[:-1]  # the last group may still grow


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


async def windows(
    conn: asyncpg.Connection, requests: list[tuple[int, datetime, int | None]]
) -> dict[int, list[asyncpg.Record]]:
    """`window` for many characteristics in one round trip."""
    if not requests:
        return {}
    cids, since, history = zip(*requests, strict=True)
    rows = await conn.fetch(
        """SELECT w.cid, s.ts, s.vals
           FROM unnest($1::int[], $2::timestamptz[], $3::int[]) AS w(cid, since, history)
           CROSS JOIN LATERAL (
               (SELECT ts, vals FROM subgroups WHERE characteristic_id = w.cid AND ts < w.since
                ORDER BY ts DESC LIMIT w.history)
               UNION ALL
               (SELECT ts, vals FROM subgroups WHERE characteristic_id = w.cid AND ts >= w.since)
           ) s
           ORDER BY w.cid, s.ts""",
        list(cids), list(since), list(history),
    )
    out: dict[int, list[asyncpg.Record]] = {cid: [] for cid in cids}
    for r in rows:
        out[r["cid"]].append(r)
    return out


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
