"""Webhook subscriptions and the transactional outbox their deliveries are made from."""

from __future__ import annotations

import json
from typing import Any

import asyncpg


async def create_subscription(
    conn: asyncpg.Connection, url: str, secret: str, events: list[str]
) -> asyncpg.Record:
    return await conn.fetchrow(
        """INSERT INTO webhook_subscriptions (url, secret, events) VALUES ($1, $2, $3)
           RETURNING id, url, events, enabled""",
        url, secret, events,
    )


async def list_subscriptions(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT id, url, events, enabled FROM webhook_subscriptions ORDER BY id"
    )


async def delete_subscription(conn: asyncpg.Connection, sub_id: int) -> bool:
    return bool(await conn.fetchval(
        "DELETE FROM webhook_subscriptions WHERE id = $1 RETURNING true", sub_id
    ))


async def enqueue(
    conn: asyncpg.Connection, event_id: str, event_type: str, payload: dict[str, Any]
) -> int:
    """Add one delivery per enabled subscription that wants this event type; return how many."""
    rows = await conn.fetch(
        """INSERT INTO webhook_outbox (event_id, subscription_id, event_type, payload)
           SELECT $1, id, $2, $3::jsonb FROM webhook_subscriptions
           WHERE enabled AND $2 = ANY(events)
           ON CONFLICT (event_id, subscription_id) DO NOTHING
           RETURNING id""",
        event_id, event_type, json.dumps(payload),
    )
    return len(rows)


async def enqueue_test(
    conn: asyncpg.Connection, sub_id: int, event_id: str, payload: dict[str, Any]
) -> int | None:
    """One `webhook.test` delivery to subscription `sub_id` only (enabled or not); its id, or
    None when there is no such subscription."""
    return await conn.fetchval(
        """INSERT INTO webhook_outbox (event_id, subscription_id, event_type, payload)
           SELECT $1, id, 'webhook.test', $3::jsonb FROM webhook_subscriptions WHERE id = $2
           RETURNING id""",
        event_id, sub_id, json.dumps(payload),
    )


async def enqueue_many(conn: asyncpg.Connection, events: list[tuple[str, str, str]]) -> None:
    """`enqueue` for many (event id, event type, JSON payload) at once."""
    if events:
        ids, types, payloads = zip(*events, strict=True)
        await conn.execute(
            """INSERT INTO webhook_outbox (event_id, subscription_id, event_type, payload)
               SELECT e.id, s.id, e.type, e.payload::jsonb
               FROM unnest($1::text[], $2::text[], $3::text[]) AS e(id, type, payload)
               JOIN webhook_subscriptions s ON s.enabled AND e.type = ANY(s.events)
               ON CONFLICT (event_id, subscription_id) DO NOTHING""",
            list(ids), list(types), list(payloads),
        )


async def claim_due(conn: asyncpg.Connection, limit: int) -> list[asyncpg.Record]:
    """Due deliveries, locked so that two workers never send the same one at once."""
    return await conn.fetch(
        """SELECT o.id, o.event_id, o.event_type, o.payload::text AS payload, o.attempts,
                  s.url, s.secret
           FROM webhook_outbox o JOIN webhook_subscriptions s ON s.id = o.subscription_id
           WHERE o.state = 'pending' AND o.next_attempt_at <= now()
           ORDER BY o.id LIMIT $1
           FOR UPDATE OF o SKIP LOCKED""",
        limit,
    )


async def mark_delivered(conn: asyncpg.Connection, delivery_id: int) -> None:
    await conn.execute(
        """UPDATE webhook_outbox SET state = 'delivered', attempts = attempts + 1,
                  delivered_at = now(), last_error = NULL WHERE id = $1""",
        delivery_id,
    )


async def mark_failed(
    conn: asyncpg.Connection, delivery_id: int, error: str, retry_in_s: float | None
) -> None:
    """Record a failed attempt: retry after `retry_in_s`, or dead-letter it when None."""
    await conn.execute(
        """UPDATE webhook_outbox
           SET attempts = attempts + 1, last_error = $2,
               state = CASE WHEN $3::float8 IS NULL THEN 'dead' ELSE 'pending' END,
               next_attempt_at = now() + make_interval(secs => coalesce($3::float8, 0))
           WHERE id = $1""",
        delivery_id, error[:2000], retry_in_s,
    )


async def list_deliveries(
    conn: asyncpg.Connection, state: str | None, limit: int
) -> list[asyncpg.Record]:
    return await conn.fetch(
        """SELECT id, event_id, subscription_id, event_type, state, attempts, last_error,
                  created_at, delivered_at
           FROM webhook_outbox WHERE ($1::text IS NULL OR state = $1) ORDER BY id DESC LIMIT $2""",
        state, limit,
    )


async def resend(conn: asyncpg.Connection, delivery_id: int) -> bool:
    return bool(await conn.fetchval(
        """UPDATE webhook_outbox SET state = 'pending', attempts = 0, next_attempt_at = now()
           WHERE id = $1 AND state = 'dead' RETURNING true""",
        delivery_id,
    ))


async def queue_depth(conn: asyncpg.Connection) -> dict[str, int]:
    rows = await conn.fetch("SELECT state, count(*) AS n FROM webhook_outbox GROUP BY state")
    return {r["state"]: r["n"] for r in rows}
