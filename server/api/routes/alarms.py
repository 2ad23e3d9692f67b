"""Alarms: search and acknowledge."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query

from server.api.deps import LiveHub, OperatorKey, Pool, Worker
from server.exceptions import Conflict, NotFound
from server.models import AlarmAcknowledge, AlarmPublic
from server.repository import alarms as alarms_repo
from server.repository import webhooks as webhooks_repo
from server.services.spc_eval import alarm_public

router = APIRouter(prefix="/alarms", tags=["alarms"])


@router.get("", response_model=list[AlarmPublic])
async def list_alarms(
    pool: Pool, principal: OperatorKey,
    state: Literal["open", "acknowledged", "closed"] | None = None,
    characteristic: str | None = None,
    limit: int = Query(100, ge=1, le=10_000),
) -> list[AlarmPublic]:
    async with pool.acquire() as conn:
        rows = await alarms_repo.search(conn, state=state, characteristic=characteristic,
                                        limit=limit)
    return [AlarmPublic(**dict(r)) for r in rows]


@router.post("/{alarm_id}/acknowledge", response_model=AlarmPublic)
async def acknowledge(
    alarm_id: int, body: AlarmAcknowledge, pool: Pool, hub: LiveHub, worker: Worker,
    principal: OperatorKey,
) -> AlarmPublic:
    """Acknowledge an open alarm with its assignable cause and the corrective action taken."""
    async with pool.acquire() as conn, conn.transaction():
        if await alarms_repo.get(conn, alarm_id) is None:
            raise NotFound(f"no alarm {alarm_id}")
        if not await alarms_repo.acknowledge(
            conn, alarm_id, principal.actor, body.cause, body.corrective_action
        ):
            raise Conflict(f"alarm {alarm_id} is not open")
        alarm = alarm_public(await alarms_repo.get(conn, alarm_id))
        await webhooks_repo.enqueue(
            conn, f"alarm-{alarm_id}-acknowledged", "alarm.acknowledged",
            {"type": "alarm.acknowledged", "timestamp": alarm["acknowledged_at"], "data": alarm},
        )
    hub.publish({"type": "alarm", "event": "alarm.acknowledged",
                 "characteristic": alarm["characteristic"], "alarm": alarm})
    worker.notify()
    return AlarmPublic(**alarm)
