"""Alarms: search, acknowledge (with assignable cause), close; causes; the Pareto of causes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter, Query

from server.api.deps import EngineerKey, LiveHub, OperatorKey, Pool, Worker
from server.exceptions import Conflict, InvalidRequest, NotFound
from server.models import (
    AlarmAcknowledge,
    AlarmClose,
    AlarmPublic,
    CauseCreate,
    CausePublic,
    ParetoBar,
    Timestamp,
)
from server.repository import alarms as alarms_repo
from server.repository import audit as audit_repo
from server.repository import webhooks as webhooks_repo
from server.services.spc_eval import alarm_public

router = APIRouter(tags=["alarms"])


@router.get("/alarms", response_model=list[AlarmPublic])
async def list_alarms(
    pool: Pool, principal: OperatorKey,
    state: Literal["open", "acknowledged", "closed"] | None = None,
    characteristic: str | None = None,
    line: str | None = None,
    rule: str | None = None,
    kind: Literal["spc", "agent_silent", "source_down"] | None = None,
    since: Timestamp | None = None,
    until: Timestamp | None = None,
    limit: int = Query(100, ge=1, le=10_000),
) -> list[AlarmPublic]:
    """Alarm history, newest first; every filter is optional."""
    async with pool.acquire() as conn:
        rows = await alarms_repo.search(
            conn, state=state, characteristic=characteristic, line=line, rule=rule, kind=kind,
            since=since, until=until, limit=limit,
        )
    return [AlarmPublic(**dict(r)) for r in rows]


async def _transition(pool, hub, worker, alarm_id: int, event: str, change) -> dict:
    async with pool.acquire() as conn, conn.transaction():
        if await alarms_repo.get(conn, alarm_id) is None:
            raise NotFound(f"no alarm {alarm_id}")
        await change(conn)
        alarm = alarm_public(await alarms_repo.get(conn, alarm_id))
        await webhooks_repo.enqueue(
            conn, f"alarm-{alarm_id}-{event}", f"alarm.{event}",
            {"type": f"alarm.{event}", "timestamp": datetime.now(UTC).isoformat(), "data": alarm},
        )
    hub.publish({"type": "alarm", "event": f"alarm.{event}",
                 "characteristic": alarm["characteristic"], "alarm": alarm})
    worker.notify()
    return alarm


@router.post("/alarms/{alarm_id:int}/acknowledge", response_model=AlarmPublic)
async def acknowledge(
    alarm_id: int, body: AlarmAcknowledge, pool: Pool, hub: LiveHub, worker: Worker,
    principal: OperatorKey,
) -> AlarmPublic:
    """Acknowledge an open alarm with its assignable cause and the corrective action taken."""

    async def change(conn) -> None:
        if not await alarms_repo.cause_exists(conn, body.cause):
            raise InvalidRequest(
                f"unknown cause {body.cause!r}: choose one from GET /api/v1/alarm-causes"
            )
        if not await alarms_repo.acknowledge(
            conn, alarm_id, principal.actor, body.cause, body.corrective_action
        ):
            raise Conflict(f"alarm {alarm_id} is not open")
        await audit_repo.record(conn, principal.actor, "alarm.acknowledge", f"alarm:{alarm_id}",
                                body.model_dump())

    return AlarmPublic(**await _transition(pool, hub, worker, alarm_id, "acknowledged", change))


@router.post("/alarms/{alarm_id:int}/close", response_model=AlarmPublic)
async def close(
    alarm_id: int, body: AlarmClose, pool: Pool, hub: LiveHub, worker: Worker,
    principal: OperatorKey,
) -> AlarmPublic:
    async def change(conn) -> None:
        if not await alarms_repo.close(conn, alarm_id, principal.actor):
            raise Conflict(f"alarm {alarm_id} is closed already")
        await audit_repo.record(conn, principal.actor, "alarm.close", f"alarm:{alarm_id}",
                                body.model_dump())

    return AlarmPublic(**await _transition(pool, hub, worker, alarm_id, "closed", change))


@router.get("/alarm-causes", response_model=list[CausePublic])
async def list_causes(pool: Pool, principal: OperatorKey) -> list[CausePublic]:
    async with pool.acquire() as conn:
        return [CausePublic(**dict(r)) for r in await alarms_repo.causes(conn)]


@router.post("/alarm-causes", response_model=CausePublic, status_code=201)
async def add_cause(body: CauseCreate, pool: Pool, principal: EngineerKey) -> CausePublic:
    async with pool.acquire() as conn, conn.transaction():
        if not await alarms_repo.add_cause(conn, body.key, body.label, body.category):
            raise Conflict(f"cause {body.key!r} exists already")
        await audit_repo.record(conn, principal.actor, "cause.create", body.key,
                                body.model_dump())
    return CausePublic(**body.model_dump())


@router.get("/alarms/pareto", response_model=list[ParetoBar])
async def pareto(
    pool: Pool, principal: OperatorKey, line: str | None = None,
    since: Timestamp | None = None, until: Timestamp | None = None,
) -> list[ParetoBar]:
    """Assignable causes of acknowledged alarms, most frequent first, with cumulative percent."""
    async with pool.acquire() as conn:
        rows = await alarms_repo.pareto(conn, line, since, until)
    total = sum(r["count"] for r in rows) or 1
    bars, running = [], 0
    for r in rows:
        running += r["count"]
        bars.append(ParetoBar(cause=r["cause"], label=r["label"], count=r["count"],
                              cumulative_percent=round(100.0 * running / total, 1)))
    return bars


@router.get("/alarms/{alarm_id:int}", response_model=AlarmPublic)
async def get_alarm(alarm_id: int, pool: Pool, principal: OperatorKey) -> AlarmPublic:
    async with pool.acquire() as conn:
        row = await alarms_repo.get(conn, alarm_id)
    if row is None:
        raise NotFound(f"no alarm {alarm_id}")
    return AlarmPublic(**dict(row))
