"""SPC on ingest: form subgroups, fit baseline limits when due, score new points, raise alarms.

Evaluation is rebuilt from stored data: the new points plus `HISTORY` points before them (for
EWMA and CUSUM, every point since the limits version in force began, since each of their points
depends on all earlier ones), scored by `charting.score_many`. A violation is recorded once per
(rule, completing point) in `violations`, so re-evaluating after a restart, a retried batch or a
late sample never raises it twice. Callers hold the characteristic's ingest lock.

Late-sample policy: a late (out-of-order) sample is stored and, on sample-based charts, evaluated
in time order with its neighbours: a pattern it completes is raised at its completing point, even
if that point is in the past. On Xbar charts a sample older than the newest subgroup is stored but
not grouped, because the subgroups before it are already closed and evaluated.
"""

from __future__ import annotations

import json
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import numpy as np

from server.repository import alarms as alarms_repo
from server.repository import limits as limits_repo
from server.repository import measurements as measurements_repo
from server.repository import subgroups as subgroups_repo
from server.services import charting
from server.services.charting import SIZED_KINDS, SUBGROUP_KINDS, TIME_WEIGHTED, Points

# Points before the earliest new one that patterns may span (Nelson 7 needs 15).
HISTORY = 20
SEVERITY = {"we1": "critical", "nelson1": "critical", "cusum_upper": "critical",
            "cusum_lower": "critical"}
AUTO_BASELINE_ACTOR = "system:auto-baseline"


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


@dataclass
class Job:
    """One characteristic's new points, from `since` on, to evaluate."""

    characteristic: asyncpg.Record
    since: datetime


def preload_request(
    characteristic: asyncpg.Record, versions: list[asyncpg.Record], first: datetime
) -> tuple[datetime, int | None] | None:
    """(since, history) to read with `measurements.stored_near` before a batch whose earliest
    sample of this characteristic is at `first`, so that `window_from` can build the evaluation
    window without reading the new points back; None when the window must be read after the
    write (subgroup charts, which group stored samples; EWMA and CUSUM, which read from their
    limits version's start; a characteristic still waiting for its baseline)."""
    kind = characteristic["chart_type"]
    if kind in SUBGROUP_KINDS or kind in TIME_WEIGHTED or not versions:
        return None
    return first, HISTORY


def window_from(
    kind: str, stored: list[Any], new: list[tuple[datetime, float | None, float | None]],
    since: datetime,
) -> Points:
    """The evaluation window of a job from `since` on, built from what `stored_near` read
    before the write (history before the batch's earliest sample, then every stored sample of
    any quality from it on) and the samples just written (ts, value, sample_size; good ones):
    the last HISTORY good points before `since` and every good point from it on, which is
    what `measurements.evaluation_windows` would read after the write."""
    good = [(r["ts"], r["value"], r["sample_size"]) for r in stored if r["quality"] < 2]
    good.extend(new)
    good.sort(key=lambda r: r[0])
    ts = [r[0] for r in good]
    start = max(0, bisect_left(ts, since) - HISTORY)
    keep = good[start:]
    sizes = None
    if kind in SIZED_KINDS:
        sizes = np.array([r[2] for r in keep], dtype=float)
    return Points(ts[start:], np.array([r[1] for r in keep], dtype=float), sizes)


@dataclass
class Hit:
    characteristic: asyncpg.Record
    scored: charting.Scored
    index: int
    rule: str

    @property
    def key(self) -> tuple[int, str, datetime]:
        return (self.characteristic["id"], self.rule, self.scored.ts[self.index])


def everyone(key: str) -> bool:
    return True


async def evaluate(
    conn: asyncpg.Connection, jobs: list[Job], *, watched: Callable[[str], bool] = everyone,
    versions: dict[int, list[asyncpg.Record]] | None = None,
    preloaded: dict[int, Points] | None = None,
) -> list[dict[str, Any]]:
    """Score the points of every job from its `since` on; raise alarms for newly completed
    patterns; return the live events (point events only for characteristics `watched`). A fixed
    number of round trips whatever the number of characteristics (plus a few for baselines
    being fitted).

    `versions` (the limits versions of every job's characteristic) and `preloaded` (a job's
    evaluation window, exactly as `measurements.evaluation_windows` would read it; see
    `window_from`) spare round trips when the caller has them already."""
    events: list[dict[str, Any]] = []
    if not jobs:
        return events
    if versions is None:
        versions = await limits_repo.versions_for(conn, [j.characteristic["id"] for j in jobs])
    preloaded = dict(preloaded or {})
    for job in jobs:
        cid = job.characteristic["id"]
        if not versions[cid]:
            fitted = await fit_baseline(conn, job.characteristic)
            if fitted is not None:
                versions[cid] = [fitted]
                events.append(limits_event(job.characteristic["key"], fitted))
                job.since = min(job.since, fitted["effective_from"])
                preloaded.pop(cid, None)  # the window now starts at the baseline
    sample_requests, subgroup_requests = [], []
    for job in jobs:
        kind, cid = job.characteristic["chart_type"], job.characteristic["id"]
        if cid in preloaded:
            continue
        load_from, history = job.since, HISTORY
        if kind in TIME_WEIGHTED and versions[cid]:
            # each EWMA/CUSUM point depends on every point since its limits version began
            begun = [v["effective_from"] for v in versions[cid] if v["effective_from"] <= job.since]
            load_from, history = (begun[-1] if begun else job.since), 0
        target = subgroup_requests if kind in SUBGROUP_KINDS else sample_requests
        target.append((cid, load_from, history))
    rows = {**await measurements_repo.evaluation_windows(conn, sample_requests),
            **await subgroups_repo.windows(conn, subgroup_requests)}
    hits: list[Hit] = []
    windows = []
    for job in jobs:
        ch = job.characteristic
        points = (preloaded[ch["id"]] if ch["id"] in preloaded
                  else to_points(ch["chart_type"], rows.get(ch["id"], [])))
        if len(points):
            windows.append((job, points))
    # every characteristic of the batch in one scoring call: one vectorised rule evaluation per
    # rule set instead of one per characteristic and chart
    all_scored = charting.score_many([
        (job.characteristic["chart_type"], job.characteristic["rules"],
         charting.options_of(job.characteristic["options"]), points,
         versions[job.characteristic["id"]]) for job, points in windows])
    for (job, points), scored in zip(windows, all_scored, strict=True):
        ch = job.characteristic
        first_new = bisect_left(points.ts, job.since)
        hits.extend(Hit(ch, scored, i, rule) for i, rules in sorted(scored.violations.items())
                    if i >= first_new for rule in rules)
        if watched(ch["key"]):
            events.extend({"type": "point", "characteristic": ch["key"], "quality": "good", **p}
                          for p in scored.points(first_new))
    events.extend(await raise_alarms(conn, hits))
    return events


async def raise_alarms(conn: asyncpg.Connection, hits: list[Hit]) -> list[dict[str, Any]]:
    """Turn the violations not raised before into alarms: a violation whose previous point
    violated the same rule extends that episode's alarm, any other opens a new one. One webhook
    event per new alarm. Two round trips, however many alarms."""
    if not hits:
        return []
    raised, newest = await alarms_repo.raised_and_open(conn, sorted({h.key for h in hits}))
    hits = [h for h in hits if h.key not in raised]
    if not hits:
        return []
    open_alarms: dict[tuple[int, str], dict[str, Any]] = {}
    for r in newest:
        public = {k: v for k, v in r.items() if not k.startswith("h_")}
        open_alarms[(r["characteristic_id"], r["rule"])] = alarm_public(public) | {
            "_cid": r["characteristic_id"], "_last": r["last_ts"], "_added": 0, "_new": False}
    touched: list[dict[str, Any]] = []
    violations: list[tuple[int, str, datetime, dict[str, Any]]] = []
    for h in sorted(hits, key=lambda h: (h.characteristic["id"], h.rule, h.index)):
        cid, ts = h.characteristic["id"], h.scored.ts[h.index]
        alarm = open_alarms.get((cid, h.rule))
        previous = h.scored.ts[h.index - 1] if h.index else None
        if alarm is None or previous is None or alarm["_last"] != previous:
            alarm = {"id": None, "kind": "spc", "characteristic": h.characteristic["key"],
                     "subject": None, "detail": None, "rule": h.rule, "first_ts": ts.isoformat(),
                     "last_ts": ts.isoformat(), "point_count": 0,
                     "limits_version": int(h.scored.version[h.index]) or None,
                     "severity": SEVERITY.get(h.rule, "warning"), "state": "open",
                     "acknowledged_by": None, "acknowledged_at": None, "cause": None,
                     "corrective_action": None, "closed_by": None, "closed_at": None,
                     "_cid": cid, "_first": ts, "_added": 0, "_new": True}
            open_alarms[(cid, h.rule)] = alarm
        if not any(t is alarm for t in touched):
            touched.append(alarm)
        alarm["_last"] = ts
        alarm["last_ts"] = ts.isoformat()
        alarm["point_count"] += 1
        alarm["_added"] += 1
        violations.append((cid, h.rule, ts, alarm))

    def public(a: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in a.items() if not k.startswith("_")}

    opened = [a for a in touched if a["_new"]]
    created = await alarms_repo.record_episodes(
        conn,
        opened=[(a["_cid"], a["rule"], a["_first"], a["_last"], a["point_count"],
                 a["limits_version"], a["severity"],
                 json.dumps({"type": "alarm.opened", "timestamp": a["first_ts"],
                             "data": public(a)}))  # data.id is filled in by the database
                for a in opened],
        extended=[(a["id"], a["_last"], a["_added"]) for a in touched if not a["_new"]],
        violations=[(cid, rule, ts, a["id"], a.get("_first")) for cid, rule, ts, a in violations],
    )
    for a in opened:
        a["id"] = created[(a["_cid"], a["rule"], a["_first"])]
    return [{"type": "alarm", "event": "alarm.opened" if a["_new"] else "alarm.updated",
             "characteristic": a["characteristic"], "alarm": public(a)} for a in touched]
