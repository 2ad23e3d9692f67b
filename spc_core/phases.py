"""Phase I fitting, phase II scoring and multi-phase series, for every chart kind.

* **Phase I** (`fit_phase1`): estimate the chart's parameters from a baseline; optionally iterate:
  score the baseline against the current limits, drop the points (subgroups, samples) flagged by
  the chosen rules, refit on what is left, until nothing new is flagged. Every exclusion is
  reported with the iteration and the chart and rule that flagged it. For Xbar-R / Xbar-S the
  dispersion chart is checked too (rule 1 only); for I-MR only the individuals chart is used,
  because one wild value inflates two moving ranges and is already caught on the I chart.
  Excluded individual values are set to NaN before refitting, so moving ranges touching them are
  not used.
* **Phase II** (`score`): plot data against frozen parameters (from phase I or known standards
  mu0/sigma0, p0, c0, u0); nothing is re-estimated.
* **Multiple phases** (`score_phases`): limits that change at given indices (or timestamps, via
  `starts_from_times`). Each segment is fitted on its own data (or given its own parameters) and
  scored against its own limits; rules are evaluated within each segment, so a run never spans a
  change of limits.

Chart kinds, their data and their default sigma estimator (see `spc_core.sigma`):

| kind     | data                          | parameters from                         |
|----------|-------------------------------|-----------------------------------------|
| "imr"    | 1-D individual values         | mean, MR-bar/d2 ("mr")                  |
| "xbar-r" | 2-D subgroups (NaN padded)    | weighted mean, R-bar/d2 ("rbar")        |
| "xbar-s" | 2-D subgroups (NaN padded)    | weighted mean, S-bar/c4 ("sbar")        |
| "p"/"np" | defectives, `sizes`           | p-bar (Laney sigma_z with laney=True)   |
| "c"      | counts                        | c-bar                                   |
| "u"      | counts, `sizes`               | u-bar (Laney sigma_z with laney=True)   |
| "ewma"   | 1-D individual values         | mean, MR-bar/d2; options lam, L         |
| "cusum"  | 1-D individual values         | mean, MR-bar/d2; options k, h, fir      |
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from spc_core.charts import attributes as attr
from spc_core.charts import time_weighted as tw
from spc_core.charts import variables as var
from spc_core.charts.result import ChartResult
from spc_core.rules import RuleSpec

CHART_KINDS: tuple[str, ...] = ("imr", "xbar-r", "xbar-s", "p", "np", "c", "u", "ewma", "cusum")
DEFAULT_SIGMA_METHOD: dict[str, str] = {
    "imr": "mr",
    "xbar-r": "rbar",
    "xbar-s": "sbar",
    "ewma": "mr",
    "cusum": "mr",
}

Params = var.ProcessParams | attr.AttributeParams


@dataclass(frozen=True)
class ChartOptions:
    """Chart settings that are not estimated: sigma estimator, MR span, Laney, EWMA, CUSUM."""

    sigma_method: str | None = None
    mr_span: int = 2
    laney: bool = False
    lam: float = 0.2
    L: float = 3.0
    k: float = 0.5
    h: float = 5.0
    fir: float = 0.0

    def method_for(self, kind: str) -> str:
        return self.sigma_method or DEFAULT_SIGMA_METHOD[kind]


def _check_kind(kind: str) -> None:
    if kind not in CHART_KINDS:
        raise ValueError(f"chart must be one of {', '.join(CHART_KINDS)}, got {kind!r}")


def n_points(data: object) -> int:
    """Number of plotted points (subgroups for Xbar charts)."""
    return int(np.shape(data)[0]) if np.ndim(data) else 0


def _take(values: object, keep: np.ndarray | slice) -> object:
    arr = np.asarray(values)
    return arr if arr.ndim == 0 else arr[keep]


def fit(
    kind: str, data: object, *, sizes: object = None, options: ChartOptions | None = None
) -> Params:
    """Phase I estimate of the chart's parameters from all of `data` (no exclusion)."""
    _check_kind(kind)
    opt = options or ChartOptions()
    if kind in ("imr", "ewma", "cusum"):
        return var.fit_individuals(data, sigma_method=opt.method_for(kind), mr_span=opt.mr_span)
    if kind in ("xbar-r", "xbar-s"):
        return var.fit_subgroups(data, sigma_method=opt.method_for(kind))
    if kind in ("p", "np"):
        return attr.fit_p(data, _require_sizes(kind, sizes), laney=opt.laney)
    if kind == "u":
        return attr.fit_u(data, _require_sizes(kind, sizes), laney=opt.laney)
    return attr.fit_c(data)


def _require_sizes(kind: str, sizes: object) -> object:
    if sizes is None:
        raise ValueError(f"sizes is required for a {kind} chart (units inspected per sample)")
    return sizes


def score(
    kind: str,
    data: object,
    params: Params,
    *,
    sizes: object = None,
    options: ChartOptions | None = None,
) -> dict[str, ChartResult]:
    """Phase II: the chart(s) of `data` against frozen `params`, by name ("i", "mr", "xbar",
    "r", "s", "p", "np", "c", "u", "ewma", "cusum"); the first one is the primary chart."""
    _check_kind(kind)
    opt = options or ChartOptions()
    if kind == "imr":
        return {
            "i": var.individuals_chart(data, params),  # type: ignore[arg-type]
            "mr": var.moving_range_chart(data, params, mr_span=opt.mr_span),  # type: ignore[arg-type]
        }
    if kind == "xbar-r":
        return {"xbar": var.xbar_chart(data, params), "r": var.range_chart(data, params)}  # type: ignore[arg-type]
    if kind == "xbar-s":
        return {"xbar": var.xbar_chart(data, params), "s": var.s_chart(data, params)}  # type: ignore[arg-type]
    if kind == "ewma":
        return {"ewma": tw.ewma_chart(data, params, lam=opt.lam, L=opt.L)}  # type: ignore[arg-type]
    if kind == "cusum":
        return {"cusum": tw.cusum_chart(data, params, k=opt.k, h=opt.h, fir=opt.fir)}  # type: ignore[arg-type]
    if kind == "p":
        return {"p": attr.p_chart(data, _require_sizes(kind, sizes), params)}  # type: ignore[arg-type]
    if kind == "np":
        return {"np": attr.np_chart(data, _require_sizes(kind, sizes), params)}  # type: ignore[arg-type]
    if kind == "u":
        return {"u": attr.u_chart(data, _require_sizes(kind, sizes), params)}  # type: ignore[arg-type]
    return {"c": attr.c_chart(data, params)}  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- phase I


@dataclass(frozen=True)
class Exclusion:
    """A baseline point dropped in phase I: its index, the iteration, and what flagged it
    (e.g. "xbar:nelson1" or "r:nelson1")."""

    index: int
    iteration: int
    reason: str


@dataclass(frozen=True)
class PhaseOneResult:
    """Phase I outcome: the final parameters, which points were kept, and why others were not."""

    params: Params
    included: np.ndarray
    excluded: tuple[Exclusion, ...]
    iterations: int
    converged: bool
    charts: Mapping[str, ChartResult] = field(default_factory=dict)


def _drop(kind: str, data: object, sizes: object, keep: np.ndarray) -> tuple[object, object]:
    if kind in ("imr", "ewma", "cusum"):
        values = np.array(data, dtype=float)
        values[~keep] = np.nan
        return values, sizes
    subset = np.asarray(data)[keep]
    return subset, None if sizes is None else _take(sizes, keep)


def fit_phase1(
    kind: str,
    data: object,
    *,
    sizes: object = None,
    rules: RuleSpec | None = None,
    iterate: bool = True,
    max_iterations: int = 10,
    options: ChartOptions | None = None,
) -> PhaseOneResult:
    """Fit on the baseline; with `iterate`, repeatedly exclude points flagged by `rules` on the
    primary chart (and rule 1 on the dispersion chart of Xbar-R/S) and refit until stable.

    `rules` None means rule 1 alone: points beyond the chart's own limits."""
    _check_kind(kind)
    if not isinstance(max_iterations, int) or max_iterations < 1:
        raise ValueError(f"max_iterations must be a positive integer, got {max_iterations!r}")
    n = n_points(data)
    keep = np.ones(n, dtype=bool)
    excluded: list[Exclusion] = []
    params = fit(kind, data, sizes=sizes, options=options)
    charts = score(kind, data, params, sizes=sizes, options=options)
    iteration = 0
    converged = not iterate
    while iterate and iteration < max_iterations:
        iteration += 1
        flagged: dict[int, str] = {}
        for position, (name, chart) in enumerate(charts.items()):
            if kind == "imr" and name == "mr":
                continue
            if position > 0:
                chosen = None  # companions (R, S): their default, rule 1
            elif rules is not None:
                chosen = rules
            else:  # rule 1 at the chart's own limits (EWMA's L; CUSUM's h)
                chosen = None if kind in ("ewma", "cusum") else "nelson1"
            for rule_id, idx in chart.evaluate(chosen).items():
                for i in idx:
                    if keep[i]:
                        flagged.setdefault(int(i), f"{name}:{rule_id}")
        if not flagged:
            converged = True
            break
        for i, reason in sorted(flagged.items()):
            keep[i] = False
            excluded.append(Exclusion(i, iteration, reason))
        if keep.sum() < 2:
            raise ValueError(
                f"phase I excluded all but {int(keep.sum())} point(s); the baseline has no stable "
                "part to estimate limits from"
            )
        kept_data, kept_sizes = _drop(kind, data, sizes, keep)
        params = fit(kind, kept_data, sizes=kept_sizes, options=options)
        charts = score(kind, data, params, sizes=sizes, options=options)
    return PhaseOneResult(params, keep, tuple(excluded), iteration, converged, charts)


# ---------------------------------------------------------------------------- multiple phases


@dataclass(frozen=True)
class Segment:
    """One phase of a series: points start..stop-1 scored against `params`."""

    start: int
    stop: int
    params: Params
    charts: Mapping[str, ChartResult]


@dataclass(frozen=True)
class MultiPhaseResult:
    """All segments, the charts concatenated over the whole series, and rule violations found
    within each segment (indices into the whole series), per chart name and rule id."""

    segments: tuple[Segment, ...]
    charts: Mapping[str, ChartResult]
    violations: Mapping[str, Mapping[str, np.ndarray]]


def starts_from_times(times: object, change_times: object) -> list[int]:
    """Indices of the first point at or after each change time (both sorted, same type)."""
    t = np.asarray(times)
    c = np.asarray(change_times)
    if t.ndim != 1 or c.ndim != 1:
        raise ValueError("times and change_times must be 1-D")
    if len(t) > 1 and np.any(t[1:] < t[:-1]):
        raise ValueError("times must be sorted ascending")
    return [int(i) for i in np.searchsorted(t, c, side="left")]


def _concat(parts: Sequence[ChartResult]) -> ChartResult:
    first = parts[0]
    fields: dict[str, Any] = {
        name: np.concatenate([getattr(p, name) for p in parts])
        for name in ("statistic", "center", "ucl", "lcl", "sigma")
    }
    extra = {k: np.concatenate([p.extra[k] for p in parts]) for k in first.extra}
    return type(first)(
        chart=first.chart,
        process_sigma=float("nan") if len(parts) > 1 else first.process_sigma,
        sigma_method=first.sigma_method,
        default_rules=first.default_rules,
        extra=extra,
        **fields,
    )


def score_phases(
    kind: str,
    data: object,
    starts: Sequence[int],
    *,
    sizes: object = None,
    params: Sequence[Params | None] | None = None,
    rules: RuleSpec | None = None,
    options: ChartOptions | None = None,
) -> MultiPhaseResult:
    """Score a series whose limits change at `starts` (indices of each new phase's first point;
    0 is implied). Segment i uses params[i] if given, else a phase I fit of its own data."""
    _check_kind(kind)
    n = n_points(data)
    bounds = sorted({0, *(int(s) for s in starts)})
    if bounds[-1] >= n or bounds[0] < 0:
        raise ValueError(f"starts must be indices in 0..{n - 1}, got {list(starts)}")
    edges = [*bounds, n]
    if params is not None and len(params) != len(bounds):
        raise ValueError(
            f"params must have one entry per segment ({len(bounds)}), got {len(params)}"
        )
    arr = np.asarray(data)
    segments = []
    for j, (lo, hi) in enumerate(itertools.pairwise(edges)):
        seg_data = arr[lo:hi]
        seg_sizes = None if sizes is None else _take(sizes, slice(lo, hi))
        given = None if params is None else params[j]
        seg_params = (
            given if given is not None else fit(kind, seg_data, sizes=seg_sizes, options=options)
        )
        charts = score(kind, seg_data, seg_params, sizes=seg_sizes, options=options)
        segments.append(Segment(lo, hi, seg_params, charts))
    names = list(segments[0].charts)
    merged = {name: _concat([s.charts[name] for s in segments]) for name in names}
    violations: dict[str, dict[str, np.ndarray]] = {}
    for position, name in enumerate(names):
        chosen = rules if position == 0 else None
        per_rule: dict[str, list[np.ndarray]] = {}
        for s in segments:
            for rule_id, idx in s.charts[name].evaluate(chosen).items():
                per_rule.setdefault(rule_id, []).append(np.asarray(idx) + s.start)
        violations[name] = {rid: np.concatenate(parts) for rid, parts in per_rule.items()}
    return MultiPhaseResult(tuple(segments), merged, violations)
