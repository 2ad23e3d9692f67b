"""Chart data: the plotted statistic with per-point limits versions and violations."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Query

from server.api.deps import OperatorKey, Pool
from server.api.routes.characteristics import _get, to_public
from server.models import QUALITY_NAMES, ChartPoint, ChartPublic, LimitsPublic
from server.repository import alarms as alarms_repo
from server.repository import limits as limits_repo
from server.repository import measurements as measurements_repo
from server.services import spc_eval

router = APIRouter(prefix="/characteristics", tags=["charts"])


@router.get("/{key}/chart", response_model=ChartPublic)
async def chart(
    key: str, pool: Pool, principal: OperatorKey,
    start: datetime | None = None, end: datetime | None = None,
    limit: int = Query(500, ge=2, le=100_000),
) -> ChartPublic:
    """The most recent `limit` points in [start, end), each with its limits version."""
    async with pool.acquire() as conn:
        row = await _get(conn, key)
        versions = await limits_repo.versions(conn, row["id"])
        rows = await measurements_repo.chart_range(conn, row["id"], start, end, limit)
        violations = (
            await alarms_repo.violations_in(conn, row["id"], rows[0]["ts"], rows[-1]["ts"])
            if rows else []
        )
    by_ts: dict[datetime, list[str]] = {}
    for v in violations:
        by_ts.setdefault(v["ts"], []).append(v["rule"])
    ts = [r["ts"] for r in rows]
    _, _, version = spc_eval.per_point_limits(ts, versions) if versions else (None, None, None)
    points = []
    previous: float | None = None
    for i, r in enumerate(rows):
        good = r["quality"] < 2 and r["value"] is not None
        mr = abs(r["value"] - previous) if good and previous is not None else None
        if good:
            previous = r["value"]
        points.append(ChartPoint(
            ts=r["ts"], value=r["value"], quality=QUALITY_NAMES[r["quality"]], mr=mr,
            limits_version=int(version[i]) if version is not None and version[i] > 0 else None,
            violations=by_ts.get(r["ts"], []),
        ))
    return ChartPublic(
        characteristic=to_public(row, versions[-1] if versions else None),
        points=points,
        limits=[LimitsPublic(**spc_eval.limits_public(v)) for v in versions],
    )
