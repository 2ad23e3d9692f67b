"""The server's connection pool: per-execution plans and no JIT on every pooled connection."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from server.core import db
from server.services import ingest as ingest_service

QUERY = "EXPLAIN (ANALYZE) SELECT sum(g) FROM generate_series(1, 1000) g WHERE g % 7 = 1"


async def plan_at_zero_jit_cost(conn: asyncpg.Connection) -> str:
    """The plan of a query PostgreSQL would JIT-compile if JIT were on at all."""
    async with conn.transaction():
        await conn.execute("SET LOCAL jit_above_cost = 0")
        return "\n".join(r[0] for r in await conn.fetch(QUERY))


async def test_every_pooled_connection_plans_per_execution_without_jit(database: str) -> None:
    pool = await db.create_pool(database, min_size=2, max_size=2)
    try:
        for _ in range(2):
            async with pool.acquire() as conn:
                assert await conn.fetchval("SHOW plan_cache_mode") == "force_custom_plan"
                assert await conn.fetchval("SHOW jit") == "off"
                plan = await plan_at_zero_jit_cost(conn)
                assert "JIT:" not in plan, plan
    finally:
        await pool.close()


async def test_a_default_connection_would_jit_compile(database: str) -> None:
    """The check above can fail: on a connection with PostgreSQL's defaults the same query is
    JIT-compiled (skipped where PostgreSQL was built without an LLVM JIT provider)."""
    conn = await asyncpg.connect(database)
    try:
        if await conn.fetchval("SELECT pg_jit_available()") is not True:
            pytest.skip("this PostgreSQL has no JIT provider")
        assert "JIT:" in await plan_at_zero_jit_cost(conn)
    finally:
        await conn.close()


async def session_state(conn: asyncpg.Connection) -> tuple[str, int]:
    return await conn.fetchrow(
        """SELECT current_setting('plan_cache_mode'),
                  (SELECT count(*) FROM pg_locks
                   WHERE locktype = 'advisory' AND pid = pg_backend_pid())::int""")


async def test_a_connection_comes_back_from_ingest_as_it_went_in(database: str) -> None:
    """The pool releases connections without asyncpg's reset query (`db.keep_session`), so
    nothing ingest does may outlive its transaction: not the plan setting it changes, not the
    advisory locks it takes, not an aborted transaction."""
    await db.migrate(database)
    pool = await db.create_pool(database, min_size=1, max_size=1)  # always the same connection
    try:
        async with pool.acquire() as conn:
            await conn.execute("INSERT INTO characteristics (key, name) VALUES ('pool-x', 'x')")
            before = await session_state(conn)
        assert before == ("force_custom_plan", 0)
        t0 = datetime(2026, 3, 1, tzinfo=UTC)
        batch = [{"characteristic": "pool-x", "ts": t0 + timedelta(seconds=i), "value": 1.0 + i % 3}
                 for i in range(40)]
        result, _ = await ingest_service.ingest(pool, "a", batch, "pool-batch-1", 1000, 60.0)
        assert result.accepted == 40
        async with pool.acquire() as conn:
            assert await session_state(conn) == before
        async with pool.acquire() as conn:  # released with its transaction still open
            await conn.transaction().start()
            await conn.execute("SELECT set_config('plan_cache_mode', 'auto', true), "
                               "pg_advisory_xact_lock(1, 2)")
            await conn.execute("INSERT INTO characteristics (key, name) VALUES ('pool-y', 'y')")
        async with pool.acquire() as conn:
            assert await session_state(conn) == before
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SELECT count(*) FROM measurements") == 40
            assert await conn.fetchval(
                "SELECT count(*) FROM characteristics WHERE key = 'pool-y'") == 0
    finally:
        await pool.close()
