"""SPC on ingest: form subgroups, fit baseline limits when due, score new points, raise alarms.

Evaluation is rebuilt from stored data: the new points plus `HISTORY` points before them (for
EWMA and CUSUM, every point since the limits version in force began, since each of their points
depends on all earlier ones), scored by `charting.score_points`. A violation is recorded once per
(rule, completing point) in `violations`, so re-evaluating after a restart, a retried batch or a
late sample never raises it twice. Callers hold the characteristic's ingest lock.

Late-sample policy: a late (out-of-order) sample is stored and, on sample-based charts, evaluated
in time order with its neighbours: a pattern it completes is raised at its completing point, even
if that point is in the past. On Xbar charts a sample older than the newest subgroup is stored but
not grouped, because the subgroups before it are already closed and evaluated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg
import numpy as np

from server.repository import alarms as alarms_repo
from server.repository import limits as limits_repo
from server.repository import measurements as measurements_repo
from server.repository import subgroups as subgroups_repo
from server.repository import webhooks as webhooks_repo
from server.services import charting
from server.services.charting import SIZED_KINDS, SUBGROUP_KINDS, TIME_WEIGHTED, Points

# Points before the earliest new one that patterns may span (Nelson 7 needs 15).
HISTORY = 20
SEVERITY = {"we1": "critical", "nelson1": "critical", "cusum_upper": "critical",
            "cusum_lower": "critical"}
AUTO_BASELINE_ACTOR = "system:auto-baseline"


@dataclass
class Outcome:
    """What one characteristic's evaluation produced, published after the transaction commits."""

    events: list[dict[str, Any]] = field(default_factory=list)
    alarms_opened: int = 0


def limits_event(key: str, row: asyncpg.Record) -> dict[str, Any]:
    return {"type": "limits", "characteristic": key, "limits": limits_public(row)}


def limits_public(row: asyncpg.Record) -> dict[str, Any]:
    return {
        "version": row["version"], "center": row["center"], "sigma": row["sigma"],
        "ucl": row["ucl"], "lcl": row["lcl"], "mr_center": row["mr_center"],
        "mr_ucl": row["mr_ucl"], "effective_from": row["effective_from"].isoformat(),
        "created_at": row["created_at"].isoformat(), "created_by": row["created_by"],
        "reason": row["reason"],
    }


def alarm_public(row: asyncpg.Record) -> dict[str, Any]:
    out = dict(row)
    for k, v in out.items():
        if isinstance(v, datetime):
            out[k] = v.isoformat()
    return out


def to_points(kind: str, rows: list[asyncpg.Record]) -> Points:
    ts = [r["ts"] for r in rows]
    if kind in SUBGROUP_KINDS:
        width = max((len(r["vals"]) for r in rows), default=1)
        data = np.full((len(rows), width), np.nan)
        for i, r in enumerate(rows):
            data[i, : len(r["vals"])] = r["vals"]
        return Points(ts, data)
    data = np.array([r["value"] for r in rows], dtype=float)
    sizes = None
    if kind in SIZED_KINDS:
        sizes = np.array([r["sample_size"] for r in rows], dtype=float)
    return Points(ts, data, sizes)


async def load_window(
    conn: asyncpg.Connection, characteristic: asyncpg.Record, since: datetime,
    history: int | None,
) -> Points:
    kind = characteristic["chart_type"]
    if kind in SUBGROUP_KINDS:
        rows = await subgroups_repo.window(conn, characteristic["id"], since, history)
    else:
        rows = await measurements_repo.evaluation_window(conn, characteristic["id"], since, history)
    return to_points(kind, rows)


async def fit_baseline(
    conn: asyncpg.Connection, characteristic: asyncpg.Record
) -> asyncpg.Record | None:
    """Phase I on the first `baseline_points` plotted points, once enough have arrived."""
    n = characteristic["baseline_points"]
    kind = characteristic["chart_type"]
    if n < 2:
        return None
    if kind in SUBGROUP_KINDS:
        rows = await subgroups_repo.first(conn, characteristic["id"], n)
    else:
        rows = await measurements_repo.first_good(conn, characteristic["id"], n)
    if len(rows) < n:
        return None
    points = to_points(kind, rows)
    try:
        params, lines = charting.fit_limits(kind, points, charting.options_of(
            characteristic["options"]))
    except ValueError:
        return None  # e.g. a constant baseline: no sigma to build limits on; the engineer decides
    center, sigma = charting.center_sigma(params)
    if not (np.isfinite(center) and np.isfinite(sigma) and sigma > 0):
        return None
    return await limits_repo.add_version(
        conn, characteristic["id"], center=center, sigma=sigma, ucl=lines["ucl"],
        lcl=lines["lcl"], mr_center=lines["mr_center"], mr_ucl=lines["mr_ucl"],
        effective_from=rows[0]["ts"], created_by=AUTO_BASELINE_ACTOR,
        reason=f"phase I baseline of the first {n} points ({kind})",
    )


async def evaluate(
    conn: asyncpg.Connection, characteristic: asyncpg.Record, since: datetime
) -> Outcome:
    """Score the points from `since` on; raise alarms for newly completed patterns."""
    outcome = Outcome()
    key = characteristic["key"]
    kind = characteristic["chart_type"]
    versions = await limits_repo.versions(conn, characteristic["id"])
    if not versions:
        fitted = await fit_baseline(conn, characteristic)
        if fitted is not None:
            versions = [fitted]
            outcome.events.append(limits_event(key, fitted))
            since = min(since, fitted["effective_from"])
    load_from, history = since, HISTORY
    if kind in TIME_WEIGHTED and versions:
        starts = [v["effective_from"] for v in versions if v["effective_from"] <= since]
        load_from, history = (starts[-1] if starts else since), 0
    points = await load_window(conn, characteristic, load_from, history)
    if not len(points):
        return outcome
    scored = charting.score_points(kind, characteristic["rules"],
                                   charting.options_of(characteristic["options"]), points,
                                   versions)
    new = [i for i, t in enumerate(points.ts) if t >= since]
    for i in new:
        for rule in scored.violations.get(i, []):
            await raise_violation(conn, characteristic, scored, i, rule, outcome)
    for i in new:
        outcome.events.append({"type": "point", "characteristic": key, "quality": "good",
                               **scored.point(i)})
    return outcome


async def raise_violation(
    conn: asyncpg.Connection, characteristic: asyncpg.Record, scored: charting.Scored, i: int,
    rule: str, outcome: Outcome,
) -> None:
    cid, ts = characteristic["id"], scored.ts
    if await alarms_repo.violation_raised(conn, cid, rule, ts[i]):
        return
    alarm_id = await alarms_repo.extend_open(conn, cid, rule, ts[i - 1], ts[i]) if i else None
    opened = alarm_id is None
    if opened:
        alarm_id = await alarms_repo.open_alarm(
            conn, cid, rule, ts[i], int(scored.version[i]) or None, SEVERITY.get(rule, "warning")
        )
    await alarms_repo.record_violation(conn, cid, rule, ts[i], alarm_id)
    alarm = alarm_public(await alarms_repo.get(conn, alarm_id))
    outcome.events.append({"type": "alarm", "event": "alarm.opened" if opened else "alarm.updated",
                           "characteristic": characteristic["key"], "alarm": alarm})
    if opened:
        outcome.alarms_opened += 1
        await webhooks_repo.enqueue(
            conn, f"alarm-{alarm_id}-opened", "alarm.opened",
            {"type": "alarm.opened", "timestamp": alarm["first_ts"], "data": alarm},
        )
