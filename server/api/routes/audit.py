"""The audit trail, read-only: there is deliberately no route that changes or deletes it."""

from __future__ import annotations

import json

from fastapi import APIRouter, Query

from server.api.deps import EngineerKey, Pool
from server.models import AuditEntry, Timestamp
from server.repository import audit as audit_repo

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get("", response_model=list[AuditEntry])
async def audit_trail(
    pool: Pool, principal: EngineerKey, subject: str | None = None,
    since: Timestamp | None = None, limit: int = Query(200, ge=1, le=10_000),
) -> list[AuditEntry]:
    async with pool.acquire() as conn:
        rows = await audit_repo.search(conn, subject, since, limit)
    return [AuditEntry(**{**dict(r), "details": json.loads(r["details"])}) for r in rows]
