"""Alarms about the collection chain: a source down (from heartbeats) and an agent gone silent.

A source reported in any state other than `connected` by its agent's heartbeat opens one
`source_down` alarm (subject `agent/source`); the first heartbeat that reports it connected again
closes it. An agent whose last heartbeat is older than `agent_silent_after_s` opens one
`agent_silent` alarm, closed by its next heartbeat. At most one such alarm is open per subject
(a partial unique index enforces it), so neither a flapping source nor several server processes
can multiply them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import asyncpg

from server.models import HeartbeatCreate
from server.repository import alarms as alarms_repo
from server.repository import webhooks as webhooks_repo
from server.services.hub import Hub
from server.services.periodic import Periodic
from server.services.spc_eval import alarm_public

log = logging.getLogger("spc.chain")
HEALTHY_STATES = frozenset({"connected"})


async def _opened(conn: asyncpg.Connection, alarm_id: int) -> dict[str, Any]:
    alarm = alarm_public(await alarms_repo.get(conn, alarm_id))
    await webhooks_repo.enqueue(conn, f"alarm-{alarm_id}-opened", "alarm.opened",
                                {"type": "alarm.opened", "timestamp": alarm["first_ts"],
                                 "data": alarm})
    return {"type": "alarm", "event": "alarm.opened", "characteristic": None, "alarm": alarm}


async def _closed(conn: asyncpg.Connection, alarm_id: int) -> dict[str, Any]:
    alarm = alarm_public(await alarms_repo.get(conn, alarm_id))
    return {"type": "alarm", "event": "alarm.closed", "characteristic": None, "alarm": alarm}


async def on_heartbeat(conn: asyncpg.Connection, beat: HeartbeatCreate) -> list[dict[str, Any]]:
    """Open and close source-down alarms from one heartbeat; close the agent's silence alarm."""
    events = []
    failing = []
    for source in beat.sources:
        if source.state in HEALTHY_STATES:
            continue
        subject = f"{beat.agent}/{source.name}"
        failing.append(subject)
        detail = f"{source.state}: {source.last_error or 'no error reported'}"
        alarm_id = await alarms_repo.open_chain_alarm(conn, "source_down", subject, detail,
                                                      "source_down")
        if alarm_id is not None:
            log.warning("source down: %s (%s)", subject, detail)
            events.append(await _opened(conn, alarm_id))
    for alarm_id in await alarms_repo.close_chain_alarms(conn, "source_down", failing,
                                                          f"{beat.agent}/"):
        events.append(await _closed(conn, alarm_id))
    for alarm_id in await alarms_repo.close_chain_alarms(conn, "agent_silent", [], beat.agent):
        events.append(await _closed(conn, alarm_id))
    return events


async def silent_agents(conn: asyncpg.Connection, after_s: float) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT name, last_seen FROM agents
           WHERE last_seen < now() - make_interval(secs => $1)""",
        after_s,
    )
    events = []
    for r in rows:
        detail = f"no heartbeat since {r['last_seen'].isoformat()}"
        alarm_id = await alarms_repo.open_chain_alarm(conn, "agent_silent", r["name"], detail,
                                                      "agent_silent")
        if alarm_id is not None:
            log.warning("agent silent: %s (%s)", r["name"], detail)
            events.append(await _opened(conn, alarm_id))
    return events


def silence_watch(
    pool: asyncpg.Pool, hub: Hub, notify: Callable[[], None], *, after_s: float,
    interval_s: float,
) -> Periodic:
    """The background job that raises "agent silent" alarms every `interval_s`."""

    async def round_() -> None:
        async with pool.acquire() as conn, conn.transaction():
            events = await silent_agents(conn, after_s)
        for e in events:
            hub.publish(e)
        if events:
            notify()

    return Periodic("silence-watch", round_, interval_s, log)
