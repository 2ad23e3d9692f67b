"""Alarms and the violations that open or extend them."""

from __future__ import annotations

from datetime import datetime

import asyncpg

ALARM_COLUMNS = """a.id, c.key AS characteristic, a.rule, a.first_ts, a.last_ts, a.point_count,
    a.limits_version, a.severity, a.state, a.acknowledged_by, a.acknowledged_at, a.cause,
    a.corrective_action"""


async def violation_raised(
    conn: asyncpg.Connection, characteristic_id: int, rule: str, ts: datetime
) -> bool:
    """Whether this (rule, completing point) was raised before, e.g. before a restart.

    Callers hold the characteristic's ingest lock, so check-then-insert cannot race.
    """
    return bool(await conn.fetchval(
        "SELECT true FROM violations WHERE characteristic_id = $1 AND rule = $2 AND ts = $3",
        characteristic_id, rule, ts,
    ))


async def record_violation(
    conn: asyncpg.Connection, characteristic_id: int, rule: str, ts: datetime, alarm_id: int
) -> None:
    await conn.execute(
        "INSERT INTO violations (characteristic_id, rule, ts, alarm_id) VALUES ($1, $2, $3, $4)",
        characteristic_id, rule, ts, alarm_id,
    )


async def extend_open(
    conn: asyncpg.Connection, characteristic_id: int, rule: str, previous_ts: datetime,
    ts: datetime,
) -> int | None:
    """Extend the open alarm of this rule whose last point is `previous_ts`; its id, or None."""
    return await conn.fetchval(
        """UPDATE alarms SET last_ts = $4, point_count = point_count + 1, updated_at = now()
           WHERE characteristic_id = $1 AND rule = $2 AND state <> 'closed' AND last_ts = $3
           RETURNING id""",
        characteristic_id, rule, previous_ts, ts,
    )


async def open_alarm(
    conn: asyncpg.Connection, characteristic_id: int, rule: str, ts: datetime,
    limits_version: int | None, severity: str,
) -> int:
    return await conn.fetchval(
        """INSERT INTO alarms (characteristic_id, rule, first_ts, last_ts, limits_version, severity)
           VALUES ($1, $2, $3, $3, $4, $5) RETURNING id""",
        characteristic_id, rule, ts, limits_version, severity,
    )


async def get(conn: asyncpg.Connection, alarm_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"""SELECT {ALARM_COLUMNS}
            FROM alarms a JOIN characteristics c ON c.id = a.characteristic_id
            WHERE a.id = $1""",
        alarm_id,
    )


async def search(
    conn: asyncpg.Connection, *, state: str | None, characteristic: str | None, limit: int
) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"""SELECT {ALARM_COLUMNS}
            FROM alarms a JOIN characteristics c ON c.id = a.characteristic_id
            WHERE ($1::text IS NULL OR a.state = $1) AND ($2::text IS NULL OR c.key = $2)
            ORDER BY a.id DESC LIMIT $3""",
        state, characteristic, limit,
    )


async def violations_in(
    conn: asyncpg.Connection, characteristic_id: int, start: datetime, end: datetime
) -> list[asyncpg.Record]:
    return await conn.fetch(
        """SELECT ts, rule FROM violations
           WHERE characteristic_id = $1 AND ts >= $2 AND ts <= $3 ORDER BY ts""",
        characteristic_id, start, end,
    )


async def acknowledge(
    conn: asyncpg.Connection, alarm_id: int, who: str, cause: str, action: str
) -> bool:
    done = await conn.fetchval(
        """UPDATE alarms SET state = 'acknowledged', acknowledged_by = $2, acknowledged_at = now(),
                  cause = $3, corrective_action = $4, updated_at = now()
           WHERE id = $1 AND state = 'open' RETURNING true""",
        alarm_id, who, cause, action,
    )
    return bool(done)
