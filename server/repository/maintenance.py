"""Retention and rollups: the SQL behind the server's maintenance job."""

from __future__ import annotations

from datetime import datetime

import asyncpg

ROLLUP_JOB = "rollup_1h"


async def drop_chunks_older_than(conn: asyncpg.Connection, cutoff: datetime) -> int:
    """TimescaleDB: drop whole chunks whose data is all older than `cutoff`; chunks dropped."""
    rows = await conn.fetch(
        "SELECT drop_chunks('measurements', older_than => $1::timestamptz)", cutoff
    )
    return len(rows)


async def delete_older_than(conn: asyncpg.Connection, cutoff: datetime, batch: int) -> int:
    """Plain PostgreSQL: delete in bounded batches so no transaction holds locks for long."""
    total = 0
    while True:
        deleted = await conn.fetchval(
            """WITH gone AS (
                   DELETE FROM measurements WHERE ctid IN (
                       SELECT ctid FROM measurements WHERE ts < $1 LIMIT $2)
                   RETURNING 1)
               SELECT count(*) FROM gone""",
            cutoff, batch,
        )
        total += deleted
        if deleted < batch:
            return total


async def delete_subgroups_older_than(conn: asyncpg.Connection, cutoff: datetime) -> int:
    return int((await conn.execute("DELETE FROM subgroups WHERE ts < $1", cutoff)).split()[-1])


async def rollup_done_until(conn: asyncpg.Connection) -> datetime | None:
    return await conn.fetchval(
        "SELECT done_until FROM maintenance_state WHERE job = $1", ROLLUP_JOB
    )


async def first_measurement(conn: asyncpg.Connection) -> datetime | None:
    return await conn.fetchval("SELECT min(ts) FROM measurements")


async def rollup_hours(conn: asyncpg.Connection, start: datetime, end: datetime) -> int:
    """Aggregate [start, end) into hourly rows (re-running a range replaces its rows)."""
    result = await conn.execute(
        """INSERT INTO measurement_rollups_1h
               (characteristic_id, bucket, n, mean, min, max, stddev, bad)
           SELECT characteristic_id, date_trunc('hour', ts) AS bucket,
                  count(value), avg(value), min(value), max(value), stddev_samp(value),
                  count(*) FILTER (WHERE quality = 2)
           FROM measurements WHERE ts >= $1 AND ts < $2
           GROUP BY characteristic_id, date_trunc('hour', ts)
           ON CONFLICT (characteristic_id, bucket) DO UPDATE SET
               n = EXCLUDED.n, mean = EXCLUDED.mean, min = EXCLUDED.min, max = EXCLUDED.max,
               stddev = EXCLUDED.stddev, bad = EXCLUDED.bad""",
        start, end,
    )
    await conn.execute(
        """INSERT INTO maintenance_state (job, done_until) VALUES ($1, $2)
           ON CONFLICT (job) DO UPDATE SET done_until = $2, last_run = now()""",
        ROLLUP_JOB, end,
    )
    return int(result.split()[-1])


async def rollups(
    conn: asyncpg.Connection, characteristic_id: int, start: datetime | None,
    end: datetime | None,
) -> list[asyncpg.Record]:
    return await conn.fetch(
        """SELECT bucket, n, mean, min, max, stddev, bad FROM measurement_rollups_1h
           WHERE characteristic_id = $1 AND ($2::timestamptz IS NULL OR bucket >= $2)
             AND ($3::timestamptz IS NULL OR bucket < $3)
           ORDER BY bucket""",
        characteristic_id, start, end,
    )
