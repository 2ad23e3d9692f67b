"""Characteristics and their control-limit versions."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from fastapi import APIRouter

from server.api.deps import EngineerKey, LiveHub, OperatorKey, Pool
from server.exceptions import Conflict, InvalidRequest, NotFound
from server.models import (
    CharacteristicCreate,
    CharacteristicPublic,
    CharacteristicUpdate,
    LimitsCreate,
    LimitsPublic,
)
from server.repository import audit as audit_repo
from server.repository import characteristics as characteristics_repo
from server.repository import hierarchy as hierarchy_repo
from server.repository import limits as limits_repo
from server.services import charting, spc_eval

router = APIRouter(prefix="/characteristics", tags=["characteristics"])



def to_public(row, limits=None) -> CharacteristicPublic:
    data = {k: row[k] for k in CharacteristicPublic.model_fields if k != "limits"}
    data["options"] = json.loads(row["options"]) if row["options"] else {}
    return CharacteristicPublic(
        **data, limits=LimitsPublic(**spc_eval.limits_public(limits)) if limits else None
    )


def check_specs(lsl: float | None, usl: float | None) -> None:
    if lsl is not None and usl is not None and lsl >= usl:
        raise InvalidRequest(f"lsl ({lsl}) must be below usl ({usl})")


@router.get("", response_model=list[CharacteristicPublic])
async def list_characteristics(pool: Pool, principal: OperatorKey) -> list[CharacteristicPublic]:
    async with pool.acquire() as conn:
        rows = await characteristics_repo.list_all(conn)
        latest = await limits_repo.latest_by_characteristic(conn)
    return [to_public(r, latest.get(r["id"])) for r in rows]


@router.post("", response_model=CharacteristicPublic, status_code=201)
async def create_characteristic(
    body: CharacteristicCreate, pool: Pool, principal: EngineerKey
) -> CharacteristicPublic:
    check_specs(body.lsl, body.usl)
    async with pool.acquire() as conn, conn.transaction():
        data = body.model_dump()
        if body.station is not None:
            data["station_id"] = await hierarchy_repo.station_id(conn, body.station)
            if data["station_id"] is None:
                raise NotFound(f"no station {body.station!r}: create it first (POST /stations)")
        row = await characteristics_repo.create(conn, data)
        if row is None:
            raise Conflict(f"characteristic {body.key!r} exists already")
        await audit_repo.record(conn, principal.actor, "characteristic.create", body.key, data)
    return to_public(row)


async def _get(conn, key: str):
    row = await characteristics_repo.get(conn, key)
    if row is None:
        raise NotFound(f"no characteristic {key!r}")
    return row


@router.get("/{key}", response_model=CharacteristicPublic)
async def get_characteristic(key: str, pool: Pool, principal: OperatorKey) -> CharacteristicPublic:
    async with pool.acquire() as conn:
        row = await _get(conn, key)
        versions = await limits_repo.versions(conn, row["id"])
    return to_public(row, versions[-1] if versions else None)


@router.patch("/{key}", response_model=CharacteristicPublic)
async def update_characteristic(
    key: str, body: CharacteristicUpdate, pool: Pool, principal: EngineerKey
) -> CharacteristicPublic:
    changes = body.model_dump(exclude_unset=True)
    if not changes:
        raise InvalidRequest("nothing to change: send at least one field")
    async with pool.acquire() as conn, conn.transaction():
        current = await _get(conn, key)
        check_specs(changes.get("lsl", current["lsl"]), changes.get("usl", current["usl"]))
        row = await characteristics_repo.update(conn, key, changes)
        before = {k: current[k] for k in changes}
        await audit_repo.record(conn, principal.actor, "characteristic.update", key,
                                {"before": before, "after": changes})
    return to_public(row)


@router.get("/{key}/limits", response_model=list[LimitsPublic])
async def limits_history(key: str, pool: Pool, principal: OperatorKey) -> list[LimitsPublic]:
    async with pool.acquire() as conn:
        row = await _get(conn, key)
        versions = await limits_repo.versions(conn, row["id"])
    return [LimitsPublic(**spc_eval.limits_public(v)) for v in versions]


@router.post("/{key}/limits", response_model=LimitsPublic, status_code=201)
async def activate_limits(
    key: str, body: LimitsCreate, pool: Pool, hub: LiveHub, principal: EngineerKey
) -> LimitsPublic:
    """Activate a new limits version from `effective_from` (default: now), with a reason."""
    effective = body.effective_from or datetime.now(UTC)
    if effective.tzinfo is None:
        raise InvalidRequest("effective_from needs a time zone")
    async with pool.acquire() as conn, conn.transaction():
        row = await _get(conn, key)
        versions = await limits_repo.versions(conn, row["id"])
        if versions and effective <= versions[-1]["effective_from"]:
            raise Conflict(
                f"effective_from must be after the current version's "
                f"({versions[-1]['effective_from'].isoformat()})"
            )
        try:
            lines = charting.nominal_lines(row["chart_type"], row["subgroup_size"],
                                           charting.options_of(row["options"]),
                                           body.center, body.sigma)
        except ValueError as exc:
            raise InvalidRequest(f"limits do not fit a {row['chart_type']} chart: {exc}") from exc
        created = await limits_repo.add_version(
            conn, row["id"], center=body.center, sigma=body.sigma, ucl=lines["ucl"],
            lcl=lines["lcl"], mr_center=lines["mr_center"], mr_ucl=lines["mr_ucl"],
            effective_from=effective, created_by=principal.actor, reason=body.reason,
        )
        await audit_repo.record(conn, principal.actor, "limits.activate", key,
                                {"version": created["version"], **body.model_dump()})
    hub.publish(spc_eval.limits_event(key, created))
    return LimitsPublic(**spc_eval.limits_public(created))
