"""Chart reads as columns: a range's samples come back as a few arrays (one row), not as one
record per sample.

A day at 1 Hz is 86,400 samples. As records, asyncpg builds a Record and a `datetime` for each
and the chart route then walks them in Python; as arrays (timestamps as int64 microseconds since
the Unix epoch, exact) the same data lands in numpy directly, and a `datetime` is made only for
the points a response returns.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg
import numpy as np


@dataclass
class Columns:
    """Samples in time order: times (µs since the epoch), values (NaN for NULL), quality codes,
    and lot sizes (NaN where none)."""

    us: np.ndarray
    value: np.ndarray
    quality: np.ndarray
    size: np.ndarray

    def __len__(self) -> int:
        return len(self.us)

    def take(self, mask: np.ndarray) -> Columns:
        return Columns(self.us[mask], self.value[mask], self.quality[mask], self.size[mask])


def _columns(row: asyncpg.Record | None, descending: bool) -> Columns:
    if row is None or row["us"] is None:
        return Columns(np.empty(0, np.int64), np.empty(0), np.empty(0, np.int16), np.empty(0))
    us = np.array(row["us"], dtype=np.int64)
    # None (SQL NULL) becomes NaN
    value = np.array(row["value"], dtype=float)
    quality = np.array(row["quality"], dtype=np.int16)
    size = np.array(row["size"], dtype=float)
    if descending:
        us, value, quality, size = us[::-1], value[::-1], quality[::-1], size[::-1]
    # The arrays are aggregated from an ordered subquery, which PostgreSQL follows in practice
    # but does not promise: check (cheap) and sort if ever needed.
    if len(us) > 1 and not bool(np.all(us[1:] > us[:-1])):
        order = np.argsort(us, kind="stable")
        us, value, quality, size = us[order], value[order], quality[order], size[order]
    return Columns(us, value, quality, size)


_US = "(extract(epoch FROM ts) * 1000000)::int8"


async def recent(
    conn: asyncpg.Connection, characteristic_id: int, start: datetime | None,
    end: datetime | None, limit: int,
) -> Columns:
    """The most recent `limit` samples of [start, end), every quality, in time order."""
    row = await conn.fetchrow(
        f"""SELECT array_agg(us) AS us, array_agg(value) AS value,
                   array_agg(quality) AS quality, array_agg(sample_size) AS size
            FROM (SELECT {_US} AS us, value, quality, sample_size FROM measurements
                  WHERE characteristic_id = $1
                    AND ($2::timestamptz IS NULL OR ts >= $2)
                    AND ($3::timestamptz IS NULL OR ts < $3)
                  ORDER BY ts DESC LIMIT $4) newest""",
        characteristic_id, start, end, limit,
    )
    return _columns(row, descending=True)


async def good_between(
    conn: asyncpg.Connection, characteristic_id: int, since: datetime, before: datetime
) -> Columns:
    """Good samples of [since, before), in time order (what a time-weighted chart's first
    plotted point depends on)."""
    row = await conn.fetchrow(
        f"""SELECT array_agg(us) AS us, array_agg(value) AS value,
                   array_agg(quality) AS quality, array_agg(sample_size) AS size
            FROM (SELECT {_US} AS us, value, quality, sample_size FROM measurements
                  WHERE characteristic_id = $1 AND ts >= $2 AND ts < $3 AND quality < 2
                  ORDER BY ts) lead""",
        characteristic_id, since, before,
    )
    return _columns(row, descending=False)


async def violations(
    conn: asyncpg.Connection, characteristic_id: int, first: datetime, last: datetime
) -> tuple[np.ndarray, list[str]]:
    """Recorded violations with first <= time <= last: times (µs) and rules, in time order."""
    row = await conn.fetchrow(
        f"""SELECT array_agg(us) AS us, array_agg(rule) AS rules
            FROM (SELECT {_US} AS us, rule FROM violations
                  WHERE characteristic_id = $1 AND ts >= $2 AND ts <= $3
                  ORDER BY ts) v""",
        characteristic_id, first, last,
    )
    if row is None or row["us"] is None:
        return np.empty(0, np.int64), []
    return np.array(row["us"], dtype=np.int64), list(row["rules"])


async def reduced(
    conn: asyncpg.Connection, characteristic_id: int, start: datetime, end: datetime,
    buckets: int,
) -> Columns:
    """A long range reduced in the database, so months of samples never leave it: the lowest
    and highest good value of each of `buckets` equal time buckets of [start, end], the first
    bad sample of each, and every sample that completed a rule violation; in time order.

    The violating samples are looked up one by one on the primary key (a LATERAL subquery that
    `LIMIT 1` keeps from being flattened into a join). As a join, the plan depended on the
    statistics: for chunks that autovacuum had not analysed yet (just after a day of samples
    arrived) PostgreSQL estimated one row on each side and chose a nested loop that compared
    every violation with every sample of the range: 2,171 x 86,400 comparisons, 104 s for one
    day, instead of 0.05 s with a hash join once analysed (see benchmarks/README.md)."""
    row = await conn.fetchrow(
        f"""WITH pts AS (
                SELECT ts, value, quality, sample_size,
                       floor(extract(epoch FROM ts - $2) / $4)::bigint AS bucket
                FROM measurements
                WHERE characteristic_id = $1 AND ts >= $2 AND ts <= $3),
            ranked AS (
                SELECT ts, value, quality, sample_size,
                       row_number() OVER (PARTITION BY bucket, quality = 2
                                          ORDER BY value, ts) AS lo,
                       row_number() OVER (PARTITION BY bucket, quality = 2
                                          ORDER BY value DESC, ts) AS hi
                FROM pts),
            kept AS (
                SELECT ts, value, quality, sample_size FROM ranked
                WHERE lo = 1 OR (hi = 1 AND quality < 2)
                UNION
                SELECT m.ts, m.value, m.quality, m.sample_size
                FROM violations v CROSS JOIN LATERAL (
                    SELECT ts, value, quality, sample_size FROM measurements
                    WHERE characteristic_id = v.characteristic_id AND ts = v.ts
                    LIMIT 1) m
                WHERE v.characteristic_id = $1 AND v.ts >= $2 AND v.ts <= $3)
            SELECT array_agg({_US} ORDER BY ts) AS us,
                   array_agg(value ORDER BY ts) AS value,
                   array_agg(quality ORDER BY ts) AS quality,
                   array_agg(sample_size ORDER BY ts) AS size
            FROM kept""",
        characteristic_id, start, end,
        max((end - start).total_seconds() / buckets, 1e-6),
    )
    return _columns(row, descending=False)
