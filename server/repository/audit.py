"""The append-only audit trail (the database refuses UPDATE, DELETE and TRUNCATE on it)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import asyncpg


async def record(
    conn: asyncpg.Connection, actor: str, action: str, subject: str,
    details: dict[str, Any] | None = None,
) -> None:
    await conn.execute(
        "INSERT INTO audit_log (actor, action, subject, details) VALUES ($1, $2, $3, $4::jsonb)",
        actor, action, subject, json.dumps(details or {}, default=str),
    )


async def search(
    conn: asyncpg.Connection, subject: str | None, since: datetime | None, limit: int
) -> list[asyncpg.Record]:
    return await conn.fetch(
        """SELECT id, at, actor, action, subject, details::text AS details FROM audit_log
           WHERE ($1::text IS NULL OR subject = $1) AND ($2::timestamptz IS NULL OR at >= $2)
           ORDER BY id DESC LIMIT $3""",
        subject, since, limit,
    )
