"""Chart data (with server-side downsampling) and raw CSV export."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import datetime

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from server.api.deps import OperatorKey, Pool
from server.api.routes.characteristics import _get, to_public
from server.exceptions import InvalidRequest
from server.models import QUALITY_NAMES, ChartPoint, ChartPublic, LimitsPublic
from server.repository import alarms as alarms_repo
from server.repository import limits as limits_repo
from server.repository import measurements as measurements_repo
from server.services import spc_eval

router = APIRouter(prefix="/characteristics", tags=["charts"])


def check_range(start: datetime | None, end: datetime | None) -> None:
    for name, value in (("start", start), ("end", end)):
        if value is not None and value.tzinfo is None:
            raise InvalidRequest(f"{name} needs a time zone (e.g. 2026-01-05T08:00:00Z)")
    if start and end and start >= end:
        raise InvalidRequest("start must be before end")


@router.get("/{key}/chart", response_model=ChartPublic)
async def chart(
    key: str, pool: Pool, principal: OperatorKey,
    start: datetime | None = None, end: datetime | None = None,
    limit: int = Query(500, ge=10, le=200_000, description="most points to return"),
    downsample: bool = Query(False, description="when [start, end) holds more than `limit` "
                             "points, return each time bucket's extremes and every violation "
                             "instead of only the most recent points"),
) -> ChartPublic:
    """Points in [start, end) with the limits version of each, and the violations they complete.

    Without `downsample`, the most recent `limit` points of the range. With it, a range larger
    than `limit` is reduced to the lowest and highest point of `limit / 2` equal time buckets plus
    every violating and every bad point (`downsampled: true`; moving ranges are then omitted,
    because neighbours in the reduced series are not neighbours in the process)."""
    check_range(start, end)
    async with pool.acquire() as conn:
        row = await _get(conn, key)
        versions = await limits_repo.versions(conn, row["id"])
        reduced = False
        if downsample:
            extent = await measurements_repo.span(conn, row["id"], start, end)
            if extent["n"] > limit:
                reduced = True
                rows = await measurements_repo.downsampled(
                    conn, row["id"], start or extent["first"], end or extent["last"], limit // 2
                )
        if not reduced:
            rows = await measurements_repo.chart_range(conn, row["id"], start, end, limit)
        violations = (
            await alarms_repo.violations_in(conn, row["id"], rows[0]["ts"], rows[-1]["ts"])
            if rows else []
        )
    by_ts: dict[datetime, list[str]] = {}
    for v in violations:
        by_ts.setdefault(v["ts"], []).append(v["rule"])
    ts = [r["ts"] for r in rows]
    version = spc_eval.per_point_limits(ts, versions)[2] if versions else None
    points = []
    previous: float | None = None
    for i, r in enumerate(rows):
        good = r["quality"] < 2 and r["value"] is not None
        mr = abs(r["value"] - previous) if good and previous is not None and not reduced else None
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
        downsampled=reduced,
    )


@router.get("/{key}/export.csv", response_class=StreamingResponse)
async def export_csv(
    key: str, pool: Pool, principal: OperatorKey,
    start: datetime | None = None, end: datetime | None = None,
) -> StreamingResponse:
    """Every stored sample in [start, end) as CSV: ts, value, quality, part_id, received_at."""
    check_range(start, end)
    async with pool.acquire() as conn:
        row = await _get(conn, key)

    async def rows() -> AsyncIterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["ts", "value", "quality", "part_id", "received_at"])
        async with pool.acquire() as conn, conn.transaction():
            cursor = await measurements_repo.export_rows(conn, row["id"], start, end)
            async for r in cursor:
                value = "" if r["value"] is None else repr(r["value"])
                writer.writerow([r["ts"].isoformat(), value, QUALITY_NAMES[r["quality"]],
                                 r["part_id"] or "", r["received_at"].isoformat()])
                if buffer.tell() > 65536:
                    yield buffer.getvalue()
                    buffer.seek(0)
                    buffer.truncate()
        yield buffer.getvalue()

    filename = f"{key}.csv"
    return StreamingResponse(rows(), media_type="text/csv",
                             headers={"Content-Disposition": f'attachment; filename="{filename}"'})
