"""The server's connection pool: per-execution plans and no JIT on every pooled connection."""

from __future__ import annotations

import asyncpg
import pytest

from server.core import db

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
