"""API keys: only prefixes and hashes are stored."""

from __future__ import annotations

import asyncpg


async def create(
    conn: asyncpg.Connection, prefix: str, key_hash: str, role: str, name: str, scope: str | None
) -> asyncpg.Record:
    return await conn.fetchrow(
        """INSERT INTO api_keys (prefix, key_hash, role, name, scope) VALUES ($1, $2, $3, $4, $5)
           RETURNING id, prefix, role, name, scope, created_at""",
        prefix, key_hash, role, name, scope,
    )


async def by_prefix(conn: asyncpg.Connection, prefix: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        """SELECT id, prefix, key_hash, role, name, scope FROM api_keys
           WHERE prefix = $1 AND revoked_at IS NULL""",
        prefix,
    )


async def list_active(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(
        """SELECT id, prefix, role, name, scope, created_at FROM api_keys
           WHERE revoked_at IS NULL ORDER BY id"""
    )


async def revoke(conn: asyncpg.Connection, key_id: int) -> bool:
    return bool(await conn.fetchval(
        """UPDATE api_keys SET revoked_at = now()
           WHERE id = $1 AND revoked_at IS NULL RETURNING true""",
        key_id,
    ))


async def upsert_agent(
    conn: asyncpg.Connection, name: str, version: str | None, depth: int, dropped: int,
    sources_json: str,
) -> None:
    await conn.execute(
        """INSERT INTO agents (name, version, last_seen, buffer_depth, dropped, sources)
           VALUES ($1, $2, now(), $3, $4, $5::jsonb)
           ON CONFLICT (name) DO UPDATE SET version = $2, last_seen = now(), buffer_depth = $3,
               dropped = $4, sources = $5::jsonb""",
        name, version, depth, dropped, sources_json,
    )
