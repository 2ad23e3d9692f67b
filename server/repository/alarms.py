"""Alarms and the violations that open or extend them."""

from __future__ import annotations

from datetime import datetime

import asyncpg

ALARM_COLUMNS = """a.id, a.kind, c.key AS characteristic, a.subject, a.detail, a.rule, a.first_ts,
    a.last_ts, a.point_count, a.limits_version, a.severity, a.state, a.acknowledged_by,
    a.acknowledged_at, a.cause, a.corrective_action, a.closed_by, a.closed_at"""
FROM_ALARMS = "FROM alarms a LEFT JOIN characteristics c ON c.id = a.characteristic_id"


async def raised_and_open(
    conn: asyncpg.Connection, candidates: list[tuple[int, str, datetime]]
) -> tuple[set[tuple[int, str, datetime]], list[asyncpg.Record]]:
    """In one round trip: the (characteristic, rule, completing point) candidates raised before,
    and the newest open SPC alarm of each (characteristic, rule) among them (as
    `open_spc_alarms`; their rows carry ALARM_COLUMNS plus `characteristic_id`)."""
    if not candidates:
        return set(), []
    cids, rules, stamps = zip(*candidates, strict=True)
    rows = await conn.fetch(
        f"""SELECT h.cid AS h_cid, h.rule AS h_rule, h.ts AS h_ts, v.ts IS NOT NULL AS h_raised,
                   o.*
            FROM unnest($1::int[], $2::text[], $3::timestamptz[]) AS h(cid, rule, ts)
            LEFT JOIN violations v
              ON v.characteristic_id = h.cid AND v.rule = h.rule AND v.ts = h.ts
            LEFT JOIN LATERAL (
                SELECT a.characteristic_id, {ALARM_COLUMNS} {FROM_ALARMS}
                WHERE a.characteristic_id = h.cid AND a.rule = h.rule AND a.kind = 'spc'
                  AND a.state <> 'closed'
                ORDER BY a.id DESC LIMIT 1) o ON true""",
        list(cids), list(rules), list(stamps),
    )
    raised = {(r["h_cid"], r["h_rule"], r["h_ts"]) for r in rows if r["h_raised"]}
    newest: dict[tuple[int, str], asyncpg.Record] = {}
    for r in rows:
        if r["id"] is not None:
            newest[(r["h_cid"], r["h_rule"])] = r
    return raised, list(newest.values())


async def record_episodes(
    conn: asyncpg.Connection,
    opened: list[tuple[int, str, datetime, datetime, int, int | None, str, str]],
    extended: list[tuple[int, datetime, int]],
    violations: list[tuple[int, str, datetime, int | None, datetime]],
) -> dict[tuple[int, str, datetime], int]:
    """In one statement: insert the alarms opened, extend the ones extended, record every
    violation against its alarm, and put an `alarm.opened` event in the webhook outbox for each
    alarm opened and each enabled subscription to it (as `webhooks.enqueue_many` does).

    opened: (characteristic, rule, first, last, points, limits version, severity, webhook
    payload as JSON text whose data.id is filled in here); extended: (alarm id, new last point,
    points added); violations: (characteristic, rule, ts, alarm id, or None for an alarm opened
    here, then that alarm's first point). Returns the new alarms' ids by (characteristic, rule,
    first point)."""
    if not opened and not extended and not violations:
        return {}
    o = list(zip(*opened, strict=True)) if opened else [[]] * 8
    e = list(zip(*extended, strict=True)) if extended else [[]] * 3
    v = list(zip(*violations, strict=True)) if violations else [[]] * 5
    rows = await conn.fetch(
        """WITH o AS (
               SELECT * FROM unnest($1::int[], $2::text[], $3::timestamptz[], $4::timestamptz[],
                                    $5::int[], $6::int[], $7::text[], $8::text[])
                   AS o(cid, rule, first_ts, last_ts, points, version, severity, payload)),
           new AS (
               INSERT INTO alarms (characteristic_id, rule, first_ts, last_ts, point_count,
                                   limits_version, severity)
               SELECT cid, rule, first_ts, last_ts, points, version, severity FROM o
               RETURNING id, characteristic_id, rule, first_ts),
           extended AS (
               UPDATE alarms a SET last_ts = e.last_ts, point_count = a.point_count + e.added,
                      updated_at = now()
               FROM unnest($9::bigint[], $10::timestamptz[], $11::int[]) AS e(id, last_ts, added)
               WHERE a.id = e.id),
           recorded AS (
               INSERT INTO violations (characteristic_id, rule, ts, alarm_id)
               SELECT v.cid, v.rule, v.ts, coalesce(v.alarm_id, n.id)
               FROM unnest($12::int[], $13::text[], $14::timestamptz[], $15::bigint[],
                           $16::timestamptz[]) AS v(cid, rule, ts, alarm_id, first_ts)
               LEFT JOIN new n ON v.alarm_id IS NULL AND n.characteristic_id = v.cid
                              AND n.rule = v.rule AND n.first_ts = v.first_ts),
           outbox AS (
               INSERT INTO webhook_outbox (event_id, subscription_id, event_type, payload)
               SELECT 'alarm-' || n.id || '-opened', s.id, 'alarm.opened',
                      jsonb_set(o.payload::jsonb, '{data,id}', to_jsonb(n.id))
               FROM o JOIN new n ON n.characteristic_id = o.cid AND n.rule = o.rule
                                AND n.first_ts = o.first_ts
               JOIN webhook_subscriptions s ON s.enabled AND 'alarm.opened' = ANY(s.events)
               ON CONFLICT (event_id, subscription_id) DO NOTHING)
           SELECT id, characteristic_id, rule, first_ts FROM new""",
        *[list(c) for c in (*o, *e, *v)],
    )
    return {(r["characteristic_id"], r["rule"], r["first_ts"]): r["id"] for r in rows}


async def get(conn: asyncpg.Connection, alarm_id: int) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {ALARM_COLUMNS} {FROM_ALARMS} WHERE a.id = $1",
        alarm_id,
    )


async def search(
    conn: asyncpg.Connection, *, state: str | None = None, characteristic: str | None = None,
    line: str | None = None, rule: str | None = None, kind: str | None = None,
    since: datetime | None = None, until: datetime | None = None, limit: int = 100,
) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"""SELECT {ALARM_COLUMNS} {FROM_ALARMS}
            LEFT JOIN stations st ON st.id = c.station_id
            LEFT JOIN lines l ON l.id = st.line_id
            WHERE ($1::text IS NULL OR a.state = $1) AND ($2::text IS NULL OR c.key = $2)
              AND ($3::text IS NULL OR l.key = $3) AND ($4::text IS NULL OR a.rule = $4)
              AND ($5::text IS NULL OR a.kind = $5)
              AND ($6::timestamptz IS NULL OR a.first_ts >= $6)
              AND ($7::timestamptz IS NULL OR a.first_ts < $7)
            ORDER BY a.id DESC LIMIT $8""",
        state, characteristic, line, rule, kind, since, until, limit,
    )


async def pareto(
    conn: asyncpg.Connection, line: str | None, since: datetime | None, until: datetime | None
) -> list[asyncpg.Record]:
    """Acknowledged SPC alarms counted by assignable cause, most frequent first."""
    return await conn.fetch(
        """SELECT a.cause, coalesce(ac.label, a.cause) AS label, count(*) AS count
           FROM alarms a
           JOIN characteristics c ON c.id = a.characteristic_id
           LEFT JOIN stations st ON st.id = c.station_id
           LEFT JOIN lines l ON l.id = st.line_id
           LEFT JOIN alarm_causes ac ON ac.key = a.cause
           WHERE a.cause IS NOT NULL AND ($1::text IS NULL OR l.key = $1)
             AND ($2::timestamptz IS NULL OR a.first_ts >= $2)
             AND ($3::timestamptz IS NULL OR a.first_ts < $3)
           GROUP BY a.cause, ac.label ORDER BY count(*) DESC, a.cause""",
        line, since, until,
    )


async def close(conn: asyncpg.Connection, alarm_id: int, who: str) -> bool:
    return bool(await conn.fetchval(
        """UPDATE alarms SET state = 'closed', closed_by = $2, closed_at = now(), updated_at = now()
           WHERE id = $1 AND state <> 'closed' RETURNING true""",
        alarm_id, who,
    ))


async def open_chain_alarm(
    conn: asyncpg.Connection, kind: str, subject: str, detail: str, rule: str
) -> int | None:
    """Open an agent-silent or source-down alarm unless one is open for the subject already."""
    return await conn.fetchval(
        """INSERT INTO alarms (kind, subject, detail, rule, first_ts, last_ts, severity)
           VALUES ($1, $2, $3, $4, now(), now(), 'critical')
           ON CONFLICT (kind, subject) WHERE kind <> 'spc' AND state <> 'closed' DO NOTHING
           RETURNING id""",
        kind, subject, detail, rule,
    )


async def close_chain_alarms(
    conn: asyncpg.Connection, kind: str, subjects_still_failing: list[str], subject_prefix: str
) -> list[int]:
    """Close the open alarms of `kind` under `subject_prefix` whose subject recovered."""
    rows = await conn.fetch(
        """UPDATE alarms SET state = 'closed', closed_by = 'system:recovered', closed_at = now(),
                  last_ts = now(), updated_at = now()
           WHERE kind = $1 AND state <> 'closed' AND subject LIKE $3 || '%'
             AND NOT (subject = ANY($2))
           RETURNING id""",
        kind, subjects_still_failing, subject_prefix,
    )
    return [r["id"] for r in rows]


async def causes(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT key, label, category, active FROM alarm_causes ORDER BY category, key"
    )


async def cause_exists(conn: asyncpg.Connection, key: str) -> bool:
    return bool(await conn.fetchval(
        "SELECT true FROM alarm_causes WHERE key = $1 AND active", key
    ))


async def add_cause(conn: asyncpg.Connection, key: str, label: str, category: str) -> bool:
    return bool(await conn.fetchval(
        """INSERT INTO alarm_causes (key, label, category) VALUES ($1, $2, $3)
           ON CONFLICT DO NOTHING RETURNING true""",
        key, label, category,
    ))


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
