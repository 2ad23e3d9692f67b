"""Chart data (with server-side downsampling) and raw CSV export."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import datetime

import numpy as np
from fastapi import APIRouter, Query
from fastapi.responses import Response, StreamingResponse
from pydantic_core import to_json

from server.api.deps import AppSettings, OperatorKey, Pool
from server.api.routes.characteristics import _get, to_public
from server.exceptions import InvalidRequest
from server.models import QUALITY_NAMES, ChartPublic, LimitsPublic, Timestamp
from server.repository import chart_data
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


def _points(kind: str, cols: chart_data.Columns) -> charting.Points:
    """Plotted points of a sample chart from columns, timestamps kept as microseconds."""
    sizes = cols.size if kind in charting.SIZED_KINDS else None
    return charting.Points(charting.Stamps(cols.us), cols.value.astype(float), sizes)


async def load_points(conn, characteristic, versions, start, end, limit):
    """Good plotted points of [start, end) (the most recent `limit`), the times (µs since the
    epoch) of the bad samples among them, and how many leading points were loaded only to start
    a time-weighted chart."""
    kind, cid = characteristic["chart_type"], characteristic["id"]
    if kind in charting.SUBGROUP_KINDS:
        rows = await subgroups_repo.in_range(conn, cid, start, end, limit)
        return spc_eval.to_points(kind, rows), np.empty(0, np.int64), 0
    cols = await chart_data.recent(conn, cid, start, end, limit)
    is_bad = cols.quality >= 2
    good = cols.take(~is_bad)
    lead = 0
    if kind in charting.TIME_WEIGHTED and versions and len(good):
        # EWMA and CUSUM points depend on every point since their limits version began.
        first = charting.at_micros(good.us[0])
        begun = [v["effective_from"] for v in versions if v["effective_from"] <= first]
        if begun and begun[-1] < first:
            before = await chart_data.good_between(conn, cid, begun[-1], first)
            lead = len(before)
            good = chart_data.Columns(*(np.concatenate([x, y]) for x, y in (
                (before.us, good.us), (before.value, good.value),
                (before.quality, good.quality), (before.size, good.size))))
    return _points(kind, good), cols.us[is_bad], lead


async def load_reduced(conn, characteristic, extent, buckets):
    """A long Shewhart range reduced in the database: its good points and bad samples' times."""
    cols = await chart_data.reduced(conn, characteristic["id"], extent["first"], extent["last"],
                                    buckets)
    is_bad = cols.quality >= 2
    return _points(characteristic["chart_type"], cols.take(~is_bad)), cols.us[is_bad]


@router.get("/{key}/chart", response_model=ChartPublic)
async def chart(
    key: str, pool: Pool, settings: AppSettings, principal: OperatorKey,
    start: Timestamp | None = None, end: Timestamp | None = None,
    limit: int = Query(500, ge=10, le=200_000, description="most points to return"),
    downsample_: bool = Query(False, alias="downsample", description=(
        "when [start, end) holds more than `limit` points, return each time bucket's extremes "
        "and every violation instead of only the most recent points")),
) -> Response:
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
            points, bad_us = await load_reduced(conn, row, extent, max(limit // 2, 1))
            lead = 0
        else:
            points, bad_us, lead = await load_points(conn, row, versions, start, end, fetch)
        # the plotted points (good from `lead` on, and bad) in time order: `index` is a scored
        # point's index, or -1 - j for bad sample j
        good_us = charting.micros(points.ts)[lead:]
        index = np.arange(lead, len(points))
        order_us = good_us
        if len(bad_us):
            order_us = np.concatenate([good_us, bad_us])
            index = np.concatenate([index, -1 - np.arange(len(bad_us))])
            by_time = np.argsort(order_us, kind="stable")
            order_us, index = order_us[by_time], index[by_time]
        if len(order_us):
            v_us, v_rules = await chart_data.violations(
                conn, row["id"], charting.at_micros(order_us[0]),
                charting.at_micros(order_us[-1]))
        else:
            v_us, v_rules = np.empty(0, np.int64), []
    scored = charting.score_points(row["chart_type"], row["rules"],
                                   charting.options_of(row["options"]), points, versions)
    reduced = in_database or (downsample_ and len(index) > limit)
    if reduced and not in_database:
        # choose on the numbers; only the kept points become response objects
        is_good = index >= 0
        stat = np.full(len(index), np.nan)
        stat[is_good] = scored.statistic[index[is_good]]
        always = ~is_good | np.isin(order_us, v_us)
        keep = downsample(order_us / 1e6, stat, always, max(limit // 2, 1))
        order_us, index = order_us[keep], index[keep]
    raised: dict[int, list[str]] = {}
    for u, rule in zip(v_us.tolist(), v_rules, strict=True):
        raised.setdefault(u, []).append(rule)
    good_rows = iter(scored.rows(index[index >= 0]))
    out = []
    for u, i in zip(order_us.tolist(), index.tolist(), strict=True):
        if i >= 0:
            point = next(good_rows)
            point["quality"] = "good"
            point["violations"] = raised.get(u, [])
            if in_database:
                # neighbours in a reduced series are not neighbours in the process
                point["companion"] = None
        else:
            point = {"ts": charting.at_micros(u).isoformat(), "statistic": None, "center": None,
                     "ucl": None, "lcl": None, "sigma": None, "quality": "bad",
                     "limits_version": None, "violations": []}
        out.append(point)
    body = {
        "characteristic": to_public(row, versions[-1] if versions else None).model_dump(
            mode="json"),
        "points": out,
        "limits": [LimitsPublic(**spc_eval.limits_public(v)).model_dump(mode="json")
                   for v in versions],
        "downsampled": reduced,
    }
    # Up to 200,000 points: encoded by pydantic-core (Rust) without re-validating what was
    # built from typed arrays; the schema stays documented by response_model.
    return Response(to_json(body), media_type="application/json")


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
