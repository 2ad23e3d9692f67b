"""SPC on ingest: fit baseline limits when due, score new points, raise and extend alarms.

Evaluation is rebuilt from stored data: the new points plus `HISTORY` good points before them,
each scored against the limits version in force at its timestamp. A violation is recorded once per
(rule, completing point) in `violations`, so re-evaluating after a restart, a retried batch or a
late sample never raises it twice. Callers hold the characteristic's ingest lock.

Late (out-of-order) samples are stored and evaluated in time order with their neighbours: a
pattern they complete is raised at its completing point, even if that point is in the past.
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
from server.repository import webhooks as webhooks_repo
from spc_core.charts import imr_limits
from spc_core.rules import evaluate_rules

# Good points before the earliest new one that patterns may span (Nelson 7 needs 15).
HISTORY = 20
SEVERITY = {"we1": "critical", "nelson1": "critical"}
AUTO_BASELINE_ACTOR = "system:auto-baseline"


@dataclass
class Outcome:
    """What one characteristic's evaluation produced, published after the transaction commits."""

    events: list[dict[str, Any]] = field(default_factory=list)
    violations_by_ts: dict[datetime, list[str]] = field(default_factory=dict)
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


async def fit_baseline(
    conn: asyncpg.Connection, characteristic: asyncpg.Record
) -> asyncpg.Record | None:
    """Phase I on the first `baseline_points` good samples, once enough have arrived."""
    n = characteristic["baseline_points"]
    if n < 2:
        return None
    rows = await measurements_repo.first_good(conn, characteristic["id"], n)
    if len(rows) < n:
        return None
    values = np.array([r["value"] for r in rows], dtype=float)
    fitted = imr_limits(values)
    if not np.isfinite(fitted.sigma) or fitted.sigma <= 0:
        return None  # a constant baseline cannot give limits; wait for the engineer
    return await limits_repo.add_version(
        conn, characteristic["id"],
        center=float(fitted.center), sigma=float(fitted.sigma), ucl=float(fitted.ucl),
        lcl=float(fitted.lcl), mr_center=float(fitted.mr_center), mr_ucl=float(fitted.mr_ucl),
        effective_from=rows[0]["ts"], created_by=AUTO_BASELINE_ACTOR,
        reason=f"phase I baseline of the first {n} good samples (I-MR, MR-bar/d2)",
    )


def per_point_limits(
    ts: list[datetime], versions: list[asyncpg.Record]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """center, sigma and version number of the limits in force at each timestamp (NaN if none)."""
    center = np.full(len(ts), np.nan)
    sigma = np.full(len(ts), np.nan)
    version = np.zeros(len(ts), dtype=int)
    starts = np.array([v["effective_from"].timestamp() for v in versions])
    stamps = np.array([t.timestamp() for t in ts])
    idx = np.searchsorted(starts, stamps, side="right") - 1
    valid = idx >= 0
    centers = np.array([v["center"] for v in versions])
    sigmas = np.array([v["sigma"] for v in versions])
    numbers = np.array([v["version"] for v in versions])
    center[valid] = centers[idx[valid]]
    sigma[valid] = sigmas[idx[valid]]
    version[valid] = numbers[idx[valid]]
    return center, sigma, version


async def evaluate(
    conn: asyncpg.Connection, characteristic: asyncpg.Record, since: datetime
) -> Outcome:
    """Score the points from `since` on; raise alarms for newly completed patterns."""
    outcome = Outcome()
    key = characteristic["key"]
    versions = await limits_repo.versions(conn, characteristic["id"])
    if not versions:
        fitted = await fit_baseline(conn, characteristic)
        if fitted is None:
            return outcome
        versions = [fitted]
        outcome.events.append(limits_event(key, fitted))
        since = min(since, fitted["effective_from"])
    window = await measurements_repo.evaluation_window(conn, characteristic["id"], since, HISTORY)
    if not window:
        return outcome
    ts = [r["ts"] for r in window]
    x = np.array([r["value"] for r in window], dtype=float)
    center, sigma, version = per_point_limits(ts, versions)
    found = evaluate_rules(x, center, sigma, rules=characteristic["rules"])
    hits = sorted(
        (int(i), rule) for rule, indices in found.items() for i in indices if ts[int(i)] >= since
    )
    for i, rule in hits:
        if await alarms_repo.violation_raised(conn, characteristic["id"], rule, ts[i]):
            continue
        alarm_id = None
        if i > 0:
            alarm_id = await alarms_repo.extend_open(
                conn, characteristic["id"], rule, ts[i - 1], ts[i]
            )
        opened = alarm_id is None
        if opened:
            alarm_id = await alarms_repo.open_alarm(
                conn, characteristic["id"], rule, ts[i], int(version[i]) or None,
                SEVERITY.get(rule, "warning"),
            )
        await alarms_repo.record_violation(conn, characteristic["id"], rule, ts[i], alarm_id)
        outcome.violations_by_ts.setdefault(ts[i], []).append(rule)
        alarm = alarm_public(await alarms_repo.get(conn, alarm_id))
        event_type = "alarm.opened" if opened else "alarm.updated"
        outcome.events.append({"type": "alarm", "event": event_type, "characteristic": key,
                               "alarm": alarm})
        if opened:
            outcome.alarms_opened += 1
            await webhooks_repo.enqueue(
                conn, f"alarm-{alarm_id}-opened", "alarm.opened",
                {"type": "alarm.opened", "timestamp": alarm["first_ts"], "data": alarm},
            )
    return outcome
