"""Analysis over a time range: capability, and proposed (phase I) limits from a baseline."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
from fastapi import APIRouter, Query
from pydantic import Field

from server.api.deps import EngineerKey, OperatorKey, Pool
from server.api.routes.characteristics import _get
from server.api.routes.charts import MAX_CHART_POINTS, check_range, load_points
from server.exceptions import InvalidRequest
from server.models import Strict, Timestamp
from server.services import charting
from spc_core.capability import capability
from spc_core.phases import fit_phase1

router = APIRouter(prefix="/characteristics", tags=["analysis"])
MAX_BINS = 60


class ProposalCreate(Strict):
    start: Timestamp
    end: Timestamp
    exclude_out_of_control: bool = Field(
        True, description="iterate: drop baseline points flagged by `rules`, refit until stable")
    rules: str = Field("nelson1", max_length=200,
                       description="rules that exclude baseline points: a set or a list")


def histogram(values: np.ndarray) -> dict[str, list[float]]:
    bins = int(min(MAX_BINS, max(5, np.ceil(np.log2(values.size) + 1))))  # Sturges
    counts, edges = np.histogram(values, bins=bins)
    return {"edges": edges.tolist(), "counts": counts.tolist()}


@router.get("/{key}/capability")
async def capability_report(
    key: str, pool: Pool, principal: OperatorKey,
    start: Timestamp | None = None, end: Timestamp | None = None,
    confidence: float = Query(0.95, gt=0, lt=1),
) -> dict:
    """Cp, Cpk, Cpm, Pp, Ppk with confidence intervals, expected PPM out of spec, the
    Anderson-Darling normality test and warnings, plus a histogram of the data in the range."""
    check_range(start, end)
    async with pool.acquire() as conn:
        row = await _get(conn, key)
        kind = row["chart_type"]
        if kind in charting.ATTRIBUTE_KINDS:
            raise InvalidRequest(f"capability needs variables data; {key!r} is a {kind} chart")
        if row["lsl"] is None and row["usl"] is None:
            raise InvalidRequest(
                f"{key!r} has no spec limits: set lsl and/or usl (PATCH /characteristics/{key})")
        points, _, _ = await load_points(conn, row, [], start, end, MAX_CHART_POINTS)
    options = charting.options_of(row["options"])
    try:
        result = capability(points.data, lsl=row["lsl"], usl=row["usl"], target=row["target"],
                            sigma_method=options.sigma_method, confidence=confidence)
    except ValueError as exc:
        raise InvalidRequest(f"capability of {key!r} over this range: {exc}") from exc
    flat = points.data[np.isfinite(points.data)]
    return {"characteristic": key, "start": points.ts[0] if points.ts else None,
            "end": points.ts[-1] if points.ts else None, **asdict(result),
            "histogram": histogram(flat)}


@router.post("/{key}/limits/proposal")
async def propose_limits(
    key: str, body: ProposalCreate, pool: Pool, principal: EngineerKey
) -> dict:
    """Phase I on a baseline range: proposed parameters and lines, and every baseline point
    excluded (when and why). Nothing is stored; activate with POST /characteristics/{key}/limits."""
    check_range(body.start, body.end)
    async with pool.acquire() as conn:
        row = await _get(conn, key)
        points, _, _ = await load_points(conn, row, [], body.start, body.end, MAX_CHART_POINTS)
    kind = row["chart_type"]
    if len(points) < 2:
        raise InvalidRequest(f"the baseline holds {len(points)} point(s); phase I needs at least 2")
    options = charting.options_of(row["options"])
    try:
        result = fit_phase1(kind, points.data, sizes=points.sizes, rules=body.rules,
                            iterate=body.exclude_out_of_control, options=options)
        center, sigma = charting.center_sigma(result.params)
        lines = charting.nominal_lines(kind, row["subgroup_size"], options, center, sigma)
    except ValueError as exc:
        raise InvalidRequest(f"phase I on {key!r}: {exc}") from exc
    return {
        "characteristic": key, "chart_type": kind, "center": center, "sigma": sigma, **lines,
        "points": len(points), "included": int(result.included.sum()),
        "iterations": result.iterations, "converged": result.converged,
        "excluded": [{"ts": points.ts[e.index], "index": e.index, "iteration": e.iteration,
                      "reason": e.reason} for e in result.excluded],
        "start": body.start, "end": body.end,
    }


