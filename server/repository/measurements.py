"""Measurements: bulk insert through COPY, windows for SPC evaluation, ranges for charts."""

from __future__ import annotations

from datetime import datetime, timedelta

import asyncpg

from server.repository import binary_copy

COLUMNS = ["characteristic_id", "ts", "value", "quality", "part_id", "sample_size"]


# The reads below go first back no further than this before the earliest time asked for. A
# hypertable's chunks are excluded at planning only by a bound the planner can see: without one,
# every read of "the points before t" planned and opened every chunk, and an ingest read that
# took 0.8 ms with 5 chunks took 2.5 ms with 30 and 11.5 ms with 90 (a 90-day history at
# 1-day chunks). A series whose points before t are not all within the bound (a sparse one, or
# one resuming after a stop) is read again without it.
LOOKBACK = timedelta(days=1)

WINDOW_SQL = """SELECT w.cid, m.ts, m.value, m.quality, m.sample_size
    FROM unnest($1::int[], $2::timestamptz[], $3::int[], $4::timestamptz[])
         AS w(cid, since, history, until)
    CROSS JOIN LATERAL (
        (SELECT ts, value, quality, sample_size FROM measurements
         WHERE characteristic_id = w.cid AND ts < w.since AND quality < 2 {bound}
         ORDER BY ts DESC LIMIT w.history)
        UNION ALL
        (SELECT ts, value, quality, sample_size FROM measurements
         WHERE characteristic_id = w.cid AND ts >= w.since {bound} {good}
           AND (w.until IS NULL OR ts <= w.until))
    ) m
    ORDER BY w.cid, m.ts"""


async def _windows(
    conn: asyncpg.Connection,
    requests: list[tuple[int, datetime, int | None, datetime | None]], good_only: bool,
) -> dict[int, list[asyncpg.Record]]:
    """For each (characteristic_id, since, history, until): up to `history` good points before
    `since` (None: every one), then the samples from `since` on (up to `until` inclusive, when
    given; of any quality, or good ones only), in time order, in at most two round trips."""
    good = "AND quality < 2" if good_only else ""
    floor = min(r[1] for r in requests) - LOOKBACK
    out = await _fetch(conn, WINDOW_SQL.format(bound="AND ts >= $5", good=good), requests, floor)
    again = []
    for cid, since, history, until in requests:
        before = sum(1 for r in out[cid] if r["ts"] < since)
        if history is None or before < history:  # there may be more before the floor
            again.append((cid, since, history, until))
    if again:
        out.update(await _fetch(conn, WINDOW_SQL.format(bound="", good=good), again))
    return out


async def _fetch(
    conn: asyncpg.Connection, sql: str,
    requests: list[tuple[int, datetime, int | None, datetime | None]], *extra: object,
) -> dict[int, list[asyncpg.Record]]:
    cids, since, history, until = zip(*requests, strict=True)
    rows = await conn.fetch(sql, list(cids), list(since), list(history), list(until), *extra)
    out: dict[int, list[asyncpg.Record]] = {cid: [] for cid in cids}
    for r in rows:
        out[r["cid"]].append(r)
    return out


async def stored_near(
    conn: asyncpg.Connection,
    requests: list[tuple[int, datetime, int | None, datetime | None]],
) -> dict[int, list[asyncpg.Record]]:
    """What is stored around a batch about to be written.

    requests: (characteristic_id, since, history, until). For each: up to `history` good points
    before `since` (None: every one), then every stored sample of any quality from `since` on
    (up to `until` inclusive, when given), in time order, as (ts, value, quality, sample_size).
    Ingest reads this before it writes: the samples at or after `since` tell which of the batch
    are already stored (duplicates), and together with the history they are the evaluation
    window, so the new points never have to be read back.
    """
    return await _windows(conn, requests, good_only=False) if requests else {}


async def copy_new(
    conn: asyncpg.Connection,
    rows: list[tuple[int, datetime, float | None, int, str | None, float | None]],
) -> None:
    """COPY samples known not to be stored yet straight into `measurements`.

    The caller has found the duplicates with `stored_near` while holding the ingest lock of
    every characteristic in `rows` (only ingest writes measurements, always under that lock),
    so no conflict can arise between that read and this write: no staging table and no
    ON CONFLICT are needed, and the write is the same COPY as a raw bulk load. Plain rows are
    encoded by `binary_copy` (numpy), others by asyncpg.
    """
    data = binary_copy.encode(rows)
    if data is None:
        await conn.copy_records_to_table("measurements", records=rows, columns=COLUMNS)
    else:
        # a memoryview: asyncpg would take bytes for a file name
        await conn.copy_to_table("measurements", source=memoryview(data),
                                 columns=binary_copy.COLUMNS, format="binary")


async def evaluation_windows(
    conn: asyncpg.Connection, requests: list[tuple[int, datetime, int | None]]
) -> dict[int, list[asyncpg.Record]]:
    """Good points from each `since` on, preceded by up to `history` good points before it,
    for many characteristics (as `stored_near` reads them, good points only).

    requests: (characteristic_id, since, history); history None means every earlier point."""
    if not requests:
        return {}
    return await _windows(conn, [(*r, None) for r in requests], good_only=True)


async def first_good(
    conn: asyncpg.Connection, characteristic_id: int, count: int
) -> list[asyncpg.Record]:
    return await conn.fetch(
        """SELECT ts, value, sample_size FROM measurements
           WHERE characteristic_id = $1 AND quality < 2 ORDER BY ts LIMIT $2""",
        characteristic_id, count,
    )


async def span(
    conn: asyncpg.Connection, characteristic_id: int, start: datetime | None,
    end: datetime | None,
) -> asyncpg.Record:
    """Number of points and first/last timestamps in [start, end)."""
    return await conn.fetchrow(
        """SELECT count(*) AS n, min(ts) AS first, max(ts) AS last FROM measurements
           WHERE characteristic_id = $1
             AND ($2::timestamptz IS NULL OR ts >= $2)
             AND ($3::timestamptz IS NULL OR ts < $3)""",
        characteristic_id, start, end,
    )


async def export_rows(
    conn: asyncpg.Connection, characteristic_id: int, start: datetime | None,
    end: datetime | None,
):
    return conn.cursor(
        """SELECT ts, value, quality, part_id, sample_size, received_at FROM measurements
           WHERE characteristic_id = $1
             AND ($2::timestamptz IS NULL OR ts >= $2)
             AND ($3::timestamptz IS NULL OR ts < $3)
           ORDER BY ts""",
        characteristic_id, start, end, prefetch=5000,
    )


async def count(conn: asyncpg.Connection, characteristic_id: int) -> int:
    return await conn.fetchval(
        "SELECT count(*) FROM measurements WHERE characteristic_id = $1", characteristic_id
    )


async def claim_batch(
    conn: asyncpg.Connection, key: str, agent: str | None, accepted: int, duplicates: int
) -> bool:
    """Record an idempotency key with its batch's counts; False when a batch with this key was
    already stored (a concurrent one with the same key waits here until that one commits)."""
    inserted = await conn.fetchval(
        """INSERT INTO ingest_batches (idempotency_key, agent, accepted, duplicates)
           VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING true""",
        key, agent, accepted, duplicates,
    )
    return bool(inserted)


async def stored_batch(conn: asyncpg.Connection, key: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT accepted, duplicates FROM ingest_batches WHERE idempotency_key = $1", key
    )
