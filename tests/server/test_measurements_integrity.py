"""Every measurement belongs to a characteristic, without a per-row foreign key (migration 0008):
ingest holds KEY SHARE on its characteristics for the batch, and a characteristic with
measurements cannot be deleted."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from server.exceptions import IngestRejected
from server.repository import measurements as measurements_repo
from server.services import ingest as ingest_service

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def batch(key: str, n: int = 10) -> list[dict]:
    return [{"characteristic": key, "ts": T0 + timedelta(seconds=i), "value": 1.0 + i % 3}
            for i in range(n)]


@pytest.fixture(scope="module")
def pool(migrated_pool: asyncpg.Pool) -> asyncpg.Pool:
    return migrated_pool


async def add(pool: asyncpg.Pool, key: str) -> None:
    await pool.execute("INSERT INTO characteristics (key, name) VALUES ($1, $1)", key)


async def test_measurements_have_no_row_foreign_key(pool: asyncpg.Pool) -> None:
    await add(pool, "chunked")
    await ingest_service.ingest(pool, "a", batch("chunked", 1), None, 1000, 60.0)  # a chunk
    referencing = await pool.fetch(
        "SELECT DISTINCT conrelid::regclass::text AS t FROM pg_constraint "
        "WHERE contype = 'f' AND confrelid = 'characteristics'::regclass ORDER BY 1")
    assert [r["t"] for r in referencing] == [
        "alarms", "control_limits", "measurement_rollups_1h", "subgroups", "violations"]


async def test_a_characteristic_with_measurements_cannot_be_deleted(pool: asyncpg.Pool) -> None:
    await add(pool, "kept")
    await ingest_service.ingest(pool, "a", batch("kept"), None, 1000, 60.0)
    with pytest.raises(asyncpg.ForeignKeyViolationError, match=r"\(kept\) has measurements"):
        await pool.execute("DELETE FROM characteristics WHERE key = 'kept'")
    assert await pool.fetchval(
        "SELECT count(*) FROM measurements m JOIN characteristics c ON c.id = m.characteristic_id "
        "WHERE c.key = 'kept'") == 10


async def test_one_without_measurements_can(pool: asyncpg.Pool) -> None:
    await add(pool, "never-measured")
    deleted = await pool.execute("DELETE FROM characteristics WHERE key = 'never-measured'")
    assert deleted == "DELETE 1"


async def test_a_delete_waits_for_the_batch_being_written(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a batch is inside its transaction, its characteristic cannot be deleted (the lock
    the foreign key took for each row, taken once); once it commits, its rows forbid the delete."""
    await add(pool, "busy")
    writing, go_on = asyncio.Event(), asyncio.Event()
    real_copy = measurements_repo.copy_new

    async def paused_copy(conn, rows):
        writing.set()
        await go_on.wait()
        await real_copy(conn, rows)

    monkeypatch.setattr(measurements_repo, "copy_new", paused_copy)
    task = asyncio.create_task(ingest_service.ingest(pool, "a", batch("busy"), None, 1000, 60.0))
    await asyncio.wait_for(writing.wait(), 10)
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL lock_timeout = '300ms'")
        with pytest.raises(asyncpg.LockNotAvailableError):
            await conn.execute("DELETE FROM characteristics WHERE key = 'busy'")
    go_on.set()
    result, _ = await asyncio.wait_for(task, 10)
    assert result.accepted == 10
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await pool.execute("DELETE FROM characteristics WHERE key = 'busy'")


async def test_a_batch_waits_for_a_delete_in_progress_then_finds_it_unknown(
    pool: asyncpg.Pool,
) -> None:
    await add(pool, "vanishing")
    await add(pool, "bystander")
    async with pool.acquire() as deleter:
        tx = deleter.transaction()
        await tx.start()
        await deleter.execute("DELETE FROM characteristics WHERE key = 'vanishing'")
        task = asyncio.create_task(ingest_service.ingest(
            pool, "a", batch("vanishing") + batch("bystander"), None, 1000, 60.0))
        await asyncio.sleep(0.3)
        assert not task.done()  # held up by the uncommitted delete
        await tx.commit()
    with pytest.raises(IngestRejected, match="unknown characteristic 'vanishing'"):
        await asyncio.wait_for(task, 10)
    orphans = await pool.fetchval(
        "SELECT count(*) FROM measurements m WHERE NOT EXISTS "
        "(SELECT 1 FROM characteristics c WHERE c.id = m.characteristic_id)")
    assert orphans == 0
    assert await pool.fetchval(
        "SELECT count(*) FROM measurements m JOIN characteristics c ON c.id = m.characteristic_id "
        "WHERE c.key = 'bystander'") == 0  # the whole batch was refused
