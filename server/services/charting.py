"""Plotted points of every chart kind, scored with spc_core against the limits versions.

The server never computes a control limit itself: it loads the plotted points (samples, lots or
subgroups), turns each limits version into spc_core parameters, and lets `spc_core.phases.score`
compute the statistic, the per-point centre line, limits and zone sigma. The same function feeds
SPC on ingest and the chart API, so the chart shows exactly what the alarms were raised on.

Rules are evaluated within each limits version's segment (a run never spans a change of limits,
as in `spc_core.phases.score_phases`): the primary chart with the characteristic's rule set
(Shewhart charts) or its own rule (EWMA, CUSUM); the companion dispersion chart (MR, R, S) with
rule 1 only, reported as `mr:nelson1`, `r:nelson1`, `s:nelson1`.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, overload

import numpy as np

from spc_core.charts.attributes import AttributeParams
from spc_core.charts.result import ChartResult
from spc_core.charts.variables import ProcessParams
from spc_core.phases import CHART_KINDS, ChartOptions, fit, score
from spc_core.rules import Rule, resolve_rules
from spc_core.streaming import StreamingEvaluator

SAMPLE_KINDS = frozenset({"imr", "ewma", "cusum", "c"})  # one value per sample
SIZED_KINDS = frozenset({"p", "np", "u"})  # one count per sample, with the units inspected
SUBGROUP_KINDS = frozenset({"xbar-r", "xbar-s"})  # subgroups of consecutive samples
ATTRIBUTE_KINDS = frozenset({"p", "np", "c", "u"})
TIME_WEIGHTED = frozenset({"ewma", "cusum"})  # each point depends on every earlier one
PRIMARY = {"imr": "i", "xbar-r": "xbar", "xbar-s": "xbar", "p": "p", "np": "np", "c": "c",
           "u": "u", "ewma": "ewma", "cusum": "cusum"}
COMPANION = {"imr": "mr", "xbar-r": "r", "xbar-s": "s"}
COMPANION_FIELDS = ("statistic", "center", "ucl", "lcl")
OPTION_NAMES = frozenset({"sigma_method", "mr_span", "laney", "lam", "L", "k", "h", "fir"})
assert set(PRIMARY) == set(CHART_KINDS)


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ONE_US = timedelta(microseconds=1)


class Stamps(Sequence[datetime]):
    """Timestamps held as int64 microseconds since the Unix epoch (exact); a `datetime` is made
    only for an item asked for. A chart of a day at 1 Hz scores 86,400 points and returns a few
    thousand: 86,400 `datetime` objects would cost more than the scoring."""

    __slots__ = ("us",)

    def __init__(self, us: np.ndarray) -> None:
        self.us = us

    def __len__(self) -> int:
        return len(self.us)

    @overload
    def __getitem__(self, i: int) -> datetime: ...
    @overload
    def __getitem__(self, i: slice) -> Stamps: ...
    def __getitem__(self, i: int | slice) -> datetime | Stamps:
        if isinstance(i, slice):
            return Stamps(self.us[i])
        return EPOCH + timedelta(microseconds=int(self.us[i]))


def iso_utc(us: np.ndarray) -> list[str]:
    """`datetime.isoformat()` of UTC times given in µs since the epoch, for many at once:
    2026-01-05T08:00:00.250000+00:00, or without the fraction when it is zero."""
    if not len(us):
        return []
    t = us.astype("datetime64[us]")
    text = np.datetime_as_string(t, unit="us").astype(object)
    whole = us % 1_000_000 == 0
    if whole.any():
        text[whole] = np.datetime_as_string(t[whole], unit="s")
    return [f"{x}+00:00" for x in text.tolist()]


def micros(ts: Sequence[datetime]) -> np.ndarray:
    """Timestamps as int64 microseconds since the epoch."""
    if isinstance(ts, Stamps):
        return ts.us
    return np.fromiter(((t - EPOCH) // ONE_US for t in ts), np.int64, len(ts))


def at_micros(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=int(us))


@dataclass
class Points:
    """Plotted points in time order: 1-D values or 2-D NaN-padded subgroups, lot sizes if any."""

    ts: Sequence[datetime]  # a list, or Stamps
    data: np.ndarray
    sizes: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ts)


@dataclass
class Scored:
    """Per-point results; NaN where no limits version is in force (version 0)."""

    ts: Sequence[datetime]
    statistic: np.ndarray
    center: np.ndarray
    ucl: np.ndarray
    lcl: np.ndarray
    sigma: np.ndarray
    version: np.ndarray
    companion: dict[str, np.ndarray] | None
    violations: dict[int, list[str]] = field(default_factory=dict)

    def points(self, start: int = 0) -> list[dict[str, Any]]:
        """`point(i)` for every i from `start`, converting each array once."""
        def col(a: np.ndarray) -> list[float | None]:
            part = a[start:]
            return [v if math.isfinite(v) else None for v in part.tolist()]

        stat, center, ucl, lcl, sigma = (col(a) for a in
                                         (self.statistic, self.center, self.ucl, self.lcl,
                                          self.sigma))
        versions = self.version[start:].tolist()
        comp = ({k: col(v) for k, v in self.companion.items()}
                if self.companion is not None else None)
        out = []
        for j in range(len(stat)):
            p: dict[str, Any] = {
                "ts": self.ts[start + j].isoformat(), "statistic": stat[j],
                "center": center[j], "ucl": ucl[j], "lcl": lcl[j], "sigma": sigma[j],
                "limits_version": versions[j] or None,
                "violations": self.violations.get(start + j, []),
            }
            if comp is not None:
                p["companion"] = {k: v[j] for k, v in comp.items()}
            out.append(p)
        return out

    def rows(self, index: np.ndarray) -> list[dict[str, Any]]:
        """`point(i)` for every i in `index` (the chart API's points), one array conversion per
        column instead of one per value, and the timestamps formatted together."""
        def col(a: np.ndarray) -> list[float | None]:
            return [v if math.isfinite(v) else None for v in a[index].tolist()]

        stamps = (iso_utc(self.ts.us[index]) if isinstance(self.ts, Stamps)
                  else [self.ts[i].isoformat() for i in index.tolist()])
        columns = [stamps, *(col(a) for a in (self.statistic, self.center, self.ucl, self.lcl,
                                              self.sigma)),
                   [v or None for v in self.version[index].tolist()],
                   [self.violations.get(i, []) for i in index.tolist()]]
        names = ("ts", "statistic", "center", "ucl", "lcl", "sigma", "limits_version",
                 "violations")
        out = [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]
        if self.companion is not None:
            comp = self.companion
            for p, values in zip(out, zip(*(col(comp[k]) for k in COMPANION_FIELDS),
                                          strict=True), strict=True):
                p["companion"] = dict(zip(COMPANION_FIELDS, values, strict=True))
        return out

    def point(self, i: int) -> dict[str, Any]:
        def num(a: np.ndarray) -> float | None:
            v = float(a[i])
            return v if np.isfinite(v) else None

        out: dict[str, Any] = {
            "ts": self.ts[i].isoformat(), "statistic": num(self.statistic),
            "center": num(self.center), "ucl": num(self.ucl), "lcl": num(self.lcl),
            "sigma": num(self.sigma), "limits_version": int(self.version[i]) or None,
            "violations": self.violations.get(i, []),
        }
        if self.companion is not None:
            out["companion"] = {k: num(v) for k, v in self.companion.items()}
        return out


def options_of(raw: dict[str, Any] | str | None) -> ChartOptions:
    if isinstance(raw, str):  # asyncpg hands jsonb over as text
        raw = json.loads(raw)
    return ChartOptions(**{k: v for k, v in (raw or {}).items() if k in OPTION_NAMES})


def params_from_limits(kind: str, row: Any) -> ProcessParams | AttributeParams:
    """spc_core parameters of a stored limits version (center/sigma, see migration 0003)."""
    if kind in ATTRIBUTE_KINDS:
        return AttributeParams(rate=float(row["center"]), sigma_z=float(row["sigma"]))
    return ProcessParams(mean=float(row["center"]), sigma=float(row["sigma"]))


def natural_statistic(kind: str, points: Points) -> np.ndarray:
    """What is plotted before any limits exist: the value, rate or subgroup mean."""
    if kind in SUBGROUP_KINDS:
        with np.errstate(invalid="ignore"):
            return np.nanmean(points.data, axis=1)
    if kind in ("p", "u") and points.sizes is not None:
        return points.data / points.sizes
    return points.data.astype(float)


def fit_limits(
    kind: str, points: Points, options: ChartOptions
) -> tuple[ProcessParams | AttributeParams, dict[str, float | None]]:
    """Phase I parameters from baseline points, and the nominal lines to store with them."""
    params = fit(kind, points.data, sizes=points.sizes, options=options)
    charts = score(kind, points.data, params, sizes=points.sizes, options=options)
    primary = charts[PRIMARY[kind]]
    last = len(points) - 1
    lines: dict[str, float | None] = {"ucl": _finite(primary.ucl[last]),
                                      "lcl": _finite(primary.lcl[last]),
                                      "mr_center": None, "mr_ucl": None}
    if kind in COMPANION:
        comp = charts[COMPANION[kind]]
        lines["mr_center"] = _finite(comp.center[last])
        lines["mr_ucl"] = _finite(comp.ucl[last])
    return params, lines


def nominal_lines(
    kind: str, subgroup_size: int, options: ChartOptions, center: float, sigma: float
) -> dict[str, float | None]:
    """Lines to store beside manually set parameters (the chart API computes per-point lines).

    Raises ValueError when the parameters cannot belong to this kind of chart."""
    if kind in ("p", "np") and not 0 < center < 1:
        raise ValueError(f"center is the fraction defective p-bar, in (0, 1); got {center}")
    if kind in ("c", "u") and not center > 0:
        raise ValueError(f"center is the mean count per unit, > 0; got {center}")
    if kind in SIZED_KINDS:
        return {"ucl": None, "lcl": None, "mr_center": None, "mr_ucl": None}
    data = np.full((2, subgroup_size), center) if kind in SUBGROUP_KINDS else np.full(2, center)
    params = (AttributeParams(rate=center, sigma_z=sigma) if kind in ATTRIBUTE_KINDS
              else ProcessParams(mean=center, sigma=sigma))
    charts = score(kind, data, params, options=options)
    primary = charts[PRIMARY[kind]]
    lines: dict[str, float | None] = {"ucl": _finite(primary.ucl[-1]),
                                      "lcl": _finite(primary.lcl[-1]),
                                      "mr_center": None, "mr_ucl": None}
    if kind in COMPANION:
        comp = charts[COMPANION[kind]]
        lines["mr_center"], lines["mr_ucl"] = _finite(comp.center[-1]), _finite(comp.ucl[-1])
    return lines


def center_sigma(params: ProcessParams | AttributeParams) -> tuple[float, float]:
    if isinstance(params, AttributeParams):
        return float(params.rate), float(params.sigma_z)
    return float(params.mean), float(params.sigma)


def _finite(v: float) -> float | None:
    return float(v) if np.isfinite(v) else None


def score_points(
    kind: str, rules: str, options: ChartOptions, points: Points, versions: list[Any]
) -> Scored:
    """Score every point against the version in force at its time; evaluate rules per segment."""
    return score_many([(kind, rules, options, points, versions)])[0]


# Segments up to this many points have their rules evaluated together with other
# characteristics' (padded to the longest): a longer one alone, so that one long window (a late
# sample, an EWMA version's whole history) does not widen every other segment to its length.
MANY_MAX_POINTS = 2048


@dataclass
class _Pending:
    """One chart of one segment whose rules are still to be evaluated."""

    chart: Any  # spc_core ChartResult
    rules: tuple[Rule, ...] | None  # None: evaluated already
    found: dict[str, np.ndarray] = field(default_factory=dict)


def score_many(
    items: Sequence[tuple[str, str, ChartOptions, Points, list[Any]]],
) -> list[Scored]:
    """`score_points` for many characteristics at once: (kind, rules, options, points,
    versions) each, results in the same order, identical to scoring each alone.

    Statistics and lines are computed per limits segment; the rules of every segment (each one
    its own series, so no run spans two segments or two characteristics) are evaluated in one
    vectorised spc_core call per rule set: a batch touching five characteristics runs the rule
    kernels once instead of ten times (primary and companion charts)."""
    outs: list[Scored] = []
    segments: list[tuple[Scored, int, str | None, _Pending]] = []
    for kind, rules, options, points, versions in items:
        out = _unscored(kind, points)
        outs.append(out)
        n = len(points)
        if not versions or n == 0:
            continue
        for a, b, version in version_segments(points.ts, versions):
            seg = slice(a, b)
            sizes = points.sizes[seg] if points.sizes is not None else None
            charts = score(kind, points.data[seg], params_from_limits(kind, version),
                           sizes=sizes, options=options)
            primary = charts[PRIMARY[kind]]
            for name in ("statistic", "center", "ucl", "lcl", "sigma"):
                getattr(out, name)[seg] = getattr(primary, name)
            out.version[seg] = version["version"]
            if kind in TIME_WEIGHTED:  # its own rule, on a window that is never short
                segments.append((out, a, None, _Pending(primary, None, primary.evaluate(None))))
            else:
                segments.append((out, a, None, _Pending(primary, _resolved(rules))))
            if kind in COMPANION:
                comp = charts[COMPANION[kind]]
                for name in ("statistic", "center", "ucl", "lcl"):
                    out.companion[name][seg] = getattr(comp, name)  # type: ignore[index]
                segments.append((out, a, COMPANION[kind],
                                 _Pending(comp, _resolved(comp.default_rules))))
    _evaluate_rules([pending for *_, pending in segments])
    # violations per point in the order scoring each segment alone gives: the primary chart's
    # rules in rule-set order, then the companion's
    for out, a, prefix, pending in segments:
        for rule, idx in pending.found.items():
            name = rule if prefix is None else f"{prefix}:{rule}"
            for i in idx.tolist():
                out.violations.setdefault(a + i, []).append(name)
    return outs


def version_segments(
    ts: Sequence[datetime], versions: list[Any]
) -> list[tuple[int, int, Any]]:
    """(start, end, version) of each run of points under one limits version: the version in
    force at a point is the last one (versions in order of effective_from) in effect at its
    time; points before the first version have none and are in no segment. Found by bisection,
    without converting every point's time."""
    if isinstance(ts, Stamps):
        bounds = np.searchsorted(ts.us, micros([v["effective_from"] for v in versions]),
                                 side="left").tolist()
    else:
        bounds = [bisect_left(ts, v["effective_from"]) for v in versions]
    bounds.append(len(ts))
    return [(a, b, versions[k]) for k, (a, b) in enumerate(itertools.pairwise(bounds))
            if a < b]


@functools.lru_cache(maxsize=256)
def _resolved(spec: str | tuple[str, ...]) -> tuple[Rule, ...]:
    return resolve_rules(spec)


def _unscored(kind: str, points: Points) -> Scored:
    n = len(points)
    nan = np.full(n, np.nan)
    return Scored(
        ts=points.ts, statistic=natural_statistic(kind, points), center=nan.copy(),
        ucl=nan.copy(), lcl=nan.copy(), sigma=nan.copy(), version=np.zeros(n, dtype=int),
        companion=({k: nan.copy() for k in COMPANION_FIELDS} if kind in COMPANION else None),
    )


def _evaluate_rules(pending: list[_Pending]) -> None:
    """Fill every `found` (rule id -> indices in its chart): charts sharing a rule set and no
    longer than MANY_MAX_POINTS as the columns of one (time, series) array, left-padded with
    NaN, which starts a series afresh (spc_core.streaming: a fresh evaluator's tail is NaN)."""
    groups: dict[tuple[Rule, ...], list[_Pending]] = {}
    for p in pending:
        if p.rules is None:
            continue
        if len(p.chart.statistic) > MANY_MAX_POINTS or type(p.chart) is not ChartResult:
            p.found = p.chart.evaluate(p.rules)
        else:
            groups.setdefault(p.rules, []).append(p)
    for rules, group in groups.items():
        if len(group) == 1:
            group[0].found = group[0].chart.evaluate(rules)
            continue
        length = max(len(p.chart.statistic) for p in group)
        x, center, sigma = (np.full((length, len(group)), np.nan) for _ in range(3))
        pads = np.array([length - len(p.chart.statistic) for p in group])
        for j, p in enumerate(group):
            x[pads[j]:, j] = p.chart.statistic
            center[pads[j]:, j] = p.chart.center
            sigma[pads[j]:, j] = p.chart.sigma
        hits = StreamingEvaluator(rules, len(group)).update_all(x, center, sigma)
        for p in group:
            p.found = {}
        for rule_id, (series, index) in hits.items():
            order = np.lexsort((index, series))  # by series, then point
            series, index = series[order], index[order] - pads[series[order]]
            cut = np.searchsorted(series, np.arange(len(group) + 1))
            for j, p in enumerate(group):
                p.found[rule_id] = index[cut[j]:cut[j + 1]]
