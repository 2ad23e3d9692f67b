"""Rows written through `binary_copy` (numpy) read back exactly as rows written through
asyncpg's own COPY encoder, and rows it cannot encode are left to asyncpg."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import asyncpg
import pytest

from server.repository import binary_copy
from server.repository import measurements as measurements_repo

STAMPS = [
    datetime(2026, 1, 5, 8, 0, tzinfo=UTC),
    datetime(2026, 1, 5, 8, 0, 0, 1, tzinfo=UTC),            # one microsecond
    datetime(2026, 1, 5, 8, 0, 0, 999_999, tzinfo=UTC),
    datetime(1999, 12, 31, 23, 59, 59, 123_456, tzinfo=UTC),  # before PostgreSQL's epoch
    datetime(1970, 1, 1, tzinfo=UTC),
    datetime(2150, 6, 30, 12, 0, 0, 654_321, tzinfo=UTC),
    datetime(2026, 3, 29, 3, 30, 0, 250_000, tzinfo=timezone(timedelta(hours=2))),
]
VALUES = [0.0, -0.0, 1.5, -273.15, 1e300, -1e-300, 123456789.123456789]


def rows_for(cid: int) -> list[tuple]:
    rows = []
    for i, ts in enumerate(STAMPS):
        for j, value in enumerate(VALUES):
            quality = (i + j) % 3
            rows.append((cid, ts + timedelta(minutes=j), None if quality == 2 else value,
                         quality, None, None))
    return rows


async def stored(pool: asyncpg.Pool, cid: int) -> list[tuple]:
    rows = await pool.fetch(
        "SELECT ts, value, quality, part_id, sample_size FROM measurements "
        "WHERE characteristic_id = $1 ORDER BY ts", cid)
    return [tuple(r) for r in rows]


async def test_numpy_rows_read_back_as_asyncpg_rows(migrated_pool: asyncpg.Pool) -> None:
    ids = [await migrated_pool.fetchval(
        "INSERT INTO characteristics (key, name) VALUES ($1, $1) RETURNING id", key)
        for key in ("copy-numpy", "copy-asyncpg")]
    ours, theirs = rows_for(ids[0]), rows_for(ids[1])
    assert binary_copy.encode(ours) is not None
    async with migrated_pool.acquire() as conn:
        await measurements_repo.copy_new(conn, ours)
        await conn.copy_records_to_table("measurements", records=theirs,
                                         columns=measurements_repo.COLUMNS)
    got, want = await stored(migrated_pool, ids[0]), await stored(migrated_pool, ids[1])
    assert len(got) == len(STAMPS) * len(VALUES)
    assert got == want
    assert any(r[1] is None for r in got) and any(r[1] == 1e300 for r in got)


@pytest.mark.parametrize("extra", [(("p-1", None)), ((None, 50.0)), (("", None))])
async def test_rows_with_part_or_size_go_through_asyncpg(
    migrated_pool: asyncpg.Pool, extra: tuple
) -> None:
    cid = await migrated_pool.fetchval(
        "INSERT INTO characteristics (key, name) VALUES ($1, $1) RETURNING id",
        f"copy-extra-{extra}")
    rows = [(cid, STAMPS[0], 1.0, 0, None, None), (cid, STAMPS[1], 2.0, 0, *extra)]
    assert binary_copy.encode(rows) is None
    async with migrated_pool.acquire() as conn:
        await measurements_repo.copy_new(conn, rows)
    got = await stored(migrated_pool, cid)
    assert [r[3:] for r in got] == [(None, None), extra]


def test_nothing_to_encode() -> None:
    assert binary_copy.encode([]) is None
