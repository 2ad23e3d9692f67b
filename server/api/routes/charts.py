"""Chart data (with server-side downsampling) and raw CSV export."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import datetime

import numpy as np
from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, StreamingResponse

from server.api.deps import AppSettings, OperatorKey, Pool
from server.api.routes.characteristics import _get, to_public
from server.exceptions import InvalidRequest
from server.models import QUALITY_NAMES, ChartPublic, LimitsPublic, Timestamp
from server.repository import alarms as alarms_repo
from server.repository import limits as limits_repo
from server.repository import maintenance as maintenance_repo
from server.repository import measurements as measurements_repo
from server.repository import subgroups as subgroups_repo
from server.services import charting, spc_eval

router = APIRouter(prefix="/characteristics", tags=["charts"])


def check_range(start: datetime | None, end: datetime | None) -> None:
    for name, value in (("start", start), ("end", end)):
        if value is not None and value.tzinfo is None:
            raise InvalidRequest(f"{name} needs a time zone (e.g. 2026-01-05T08:00:00Z)")
    if start and end and start >= end:
        raise InvalidRequest("start must be before end")


MAX_CHART_POINTS = 2_000_000  # what one downsampled request may read
# Charts whose statistic is the sample's value and whose points do not depend on each other
# (Shewhart): a range of more than SPC_CHART_REDUCE_IN_DATABASE_ABOVE points (weeks at 1 Hz) is
# reduced in the database before scoring, so it never leaves it whole. Shorter ranges are
# scored whole and reduced here, which keeps the moving ranges of the kept points true.
REDUCED_IN_DATABASE = frozenset({"imr", "c", "np"})


def downsample(
    stamps: np.ndarray, stat: np.ndarray, keep_always: np.ndarray, buckets: int
) -> np.ndarray:
    """Indices to keep: the lowest and highest statistic of each of `buckets` equal time
    buckets (`stamps` in seconds, ascending), plus every index in `keep_always` (violations,
    bad samples), in time order."""
    width = max((stamps[-1] - stamps[0]) / buckets, 1e-9)
    bucket = np.minimum(((stamps - stamps[0]) // width).astype(int), buckets - 1)
    finite = np.isfinite(stat)
    keep = keep_always.copy()
    idx = np.flatnonzero(finite)
    if idx.size:
        # sort by (bucket, statistic): the first and last of each bucket are its extremes
        order = idx[np.lexsort((stat[idx], bucket[idx]))]
        b = bucket[order]
        first = np.r_[True, b[1:] != b[:-1]]
        last = np.r_[b[1:] != b[:-1], True]
        keep[order[first]] = True
        keep[order[last]] = True
    return np.flatnonzero(keep)


async def load_points(conn, characteristic, versions, start, end, limit):
    """Good plotted points of [start, end) (the most recent `limit`), the bad samples among
    them, and how many leading points were loaded only to start a time-weighted chart."""
    kind, cid = characteristic["chart_type"], characteristic["id"]
    if kind in charting.SUBGROUP_KINDS:
        rows, bad = await subgroups_repo.in_range(conn, cid, start, end, limit), []
    else:
        rows = await measurements_repo.chart_range(conn, cid, start, end, limit)
        bad = [r for r in rows if r["quality"] >= 2]
        rows = [r for r in rows if r["quality"] < 2]
    lead = 0
    if kind in charting.TIME_WEIGHTED and versions and rows:
        # EWMA and CUSUM points depend on every point since their limits version began.
        first = rows[0]["ts"]
        begun = [v["effective_from"] for v in versions if v["effective_from"] <= first]
        if begun and begun[-1] < first:
            before = await measurements_repo.evaluation_window(conn, cid, begun[-1], 0)
            before = [r for r in before if r["ts"] < first]
            lead = len(before)
            rows = before + rows
    return spc_eval.to_points(kind, rows), bad, lead


@router.get("/{key}/chart", response_model=ChartPublic)
async def chart(
    key: str, pool: Pool, settings: AppSettings, principal: OperatorKey,
    start: Timestamp | None = None, end: Timestamp | None = None,
    limit: int = Query(500, ge=10, le=200_000, description="most points to return"),
    downsample_: bool = Query(False, alias="downsample", description=(
        "when [start, end) holds more than `limit` points, return each time bucket's extremes "
        "and every violation instead of only the most recent points")),
) -> JSONResponse:
    """Plotted points in [start, end): statistic, per-point centre line, limits and zone sigma,
    the companion dispersion chart (MR, R, S), the limits version of each point and the rule
    violations raised on it.

    Without `downsample`, the most recent `limit` points of the range. With it, a range holding
    more is reduced to the lowest and highest point of `limit / 2` equal time buckets plus every
    violating and every bad point (`downsampled: true`)."""
    check_range(start, end)
    async with pool.acquire() as conn:
        row = await _get(conn, key)
        versions = await limits_repo.versions(conn, row["id"])
        fetch = MAX_CHART_POINTS if downsample_ else limit
        in_database = False
        if downsample_ and row["chart_type"] in REDUCED_IN_DATABASE:
            extent = await measurements_repo.span(conn, row["id"], start, end)
            in_database = extent["n"] > max(limit, settings.chart_reduce_in_database_above)
        if in_database:
            # buckets over the data's own extent within the range, as an operator zooms
            rows = await measurements_repo.reduced_range(
                conn, row["id"], extent["first"], extent["last"], max(limit // 2, 1))
            bad = [r for r in rows if r["quality"] >= 2]
            points = spc_eval.to_points(row["chart_type"], [r for r in rows if r["quality"] < 2])
            lead = 0
        else:
            points, bad, lead = await load_points(conn, row, versions, start, end, fetch)
        stamps = points.ts + [b["ts"] for b in bad]
        violations = (await alarms_repo.violations_in(conn, row["id"], min(stamps), max(stamps))
                      if stamps else [])
    scored = charting.score_points(row["chart_type"], row["rules"],
                                   charting.options_of(row["options"]), points, versions)
    raised: dict[datetime, list[str]] = {}
    for v in violations:
        raised.setdefault(v["ts"], []).append(v["rule"])
    # (timestamp, index of a scored point, or -1 - j for bad sample j), in time order
    good = range(lead, len(points))
    if bad:
        order = sorted([(scored.ts[i], i) for i in good]
                       + [(b["ts"], -1 - j) for j, b in enumerate(bad)])
    else:  # the common case: already in time order, no tuples to sort
        order = list(zip(scored.ts[lead:], good, strict=True))
    reduced = in_database or (downsample_ and len(order) > limit)
    if reduced and not in_database:
        # choose on the numbers first; only the kept points become response objects
        index = np.fromiter((i for _, i in order), int, len(order))
        is_good = index >= 0
        stat = np.full(len(order), np.nan)
        stat[is_good] = scored.statistic[index[is_good]]
        stamps = np.full(len(order), np.nan)
        stamps[is_good] = points.epoch[index[is_good]]
        if not is_good.all():
            stamps[~is_good] = [t.timestamp() for t, i in order if i < 0]
        flagged = {t for t in raised}
        always = ~is_good
        if flagged:
            always |= np.fromiter((t in flagged for t, _ in order), bool, len(order))
        keep = downsample(stamps, stat, always, max(limit // 2, 1))
        order = [order[k] for k in keep]
    out = []
    for t, i in order:
        if i >= 0:
            point = {**scored.point(i), "quality": "good", "violations": raised.get(t, [])}
            if in_database:
                # neighbours in a reduced series are not neighbours in the process
                point["companion"] = None
            out.append(point)
        else:
            out.append({"ts": t.isoformat(), "statistic": None, "center": None, "ucl": None,
                        "lcl": None, "sigma": None, "quality": "bad", "limits_version": None,
                        "violations": []})
    body = {
        "characteristic": to_public(row, versions[-1] if versions else None).model_dump(
            mode="json"),
        "points": out,
        "limits": [LimitsPublic(**spc_eval.limits_public(v)).model_dump(mode="json")
                   for v in versions],
        "downsampled": reduced,
    }
    # Up to 200,000 points: skip re-validating what was built from typed arrays; the schema
    # stays documented by response_model.
    return JSONResponse(body)


@router.get("/{key}/rollups")
async def rollups(
    key: str, pool: Pool, principal: OperatorKey,
    start: Timestamp | None = None, end: Timestamp | None = None,
) -> list[dict]:
    """Hourly summaries (n, mean, min, max, standard deviation, bad samples) kept by the
    maintenance job; they outlive the raw samples' retention."""
    check_range(start, end)
    async with pool.acquire() as conn:
        row = await _get(conn, key)
        return [dict(r) for r in await maintenance_repo.rollups(conn, row["id"], start, end)]


@router.get("/{key}/export.csv", response_class=StreamingResponse)
async def export_csv(
    key: str, pool: Pool, principal: OperatorKey,
    start: Timestamp | None = None, end: Timestamp | None = None,
) -> StreamingResponse:
    """Every stored sample in [start, end) as CSV: ts, value, quality, part_id, size,
    received_at."""
    check_range(start, end)
    async with pool.acquire() as conn:
        row = await _get(conn, key)

    async def rows() -> AsyncIterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["ts", "value", "quality", "part_id", "size", "received_at"])
        async with pool.acquire() as conn, conn.transaction():
            cursor = await measurements_repo.export_rows(conn, row["id"], start, end)
            async for r in cursor:
                value = "" if r["value"] is None else repr(r["value"])
                size = "" if r["sample_size"] is None else repr(r["sample_size"])
                writer.writerow([r["ts"].isoformat(), value, QUALITY_NAMES[r["quality"]],
                                 r["part_id"] or "", size, r["received_at"].isoformat()])
                if buffer.tell() > 65536:
                    yield buffer.getvalue()
                    buffer.seek(0)
                    buffer.truncate()
        yield buffer.getvalue()

    filename = f"{key}.csv"
    return StreamingResponse(rows(), media_type="text/csv",
                             headers={"Content-Disposition": f'attachment; filename="{filename}"'})
