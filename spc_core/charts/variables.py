"""Variables charts: individuals and moving range (I-MR), Xbar-R, Xbar-S.

Phase I fitting (`fit_individuals`, `fit_subgroups`, `imr_limits`) estimates the process mean and
sigma; phase II scoring (`individuals_chart`, `moving_range_chart`, `xbar_chart`, `range_chart`,
`s_chart`) plots data against given `ProcessParams` without changing them, so known standards
(mu0, sigma0) are simply `ProcessParams(mu0, sigma0, "given")`.

All limits are built from the process sigma, per subgroup size n_i, which reproduces the textbook
factors for equal n (Xbar: x-double-bar +- A2 R-bar = +- 3 sigma/sqrt(n) with sigma = R-bar/d2;
R: D3 R-bar, D4 R-bar = (d2 -+ 3 d3) sigma; S: B3 S-bar, B4 S-bar = (c4 -+ 3 sqrt(1 - c4^2)) sigma)
and gives stair-step limits for variable n.

Sources: Montgomery, *Introduction to Statistical Quality Control*, 6th ed., ch. 6 (Xbar-R eqs.
6.4-6.5, Xbar-S eqs. 6.27-6.33, variable sample size section 6.3.2, individuals section 6.4);
NIST/SEMATECH e-Handbook 6.3.2.1 (Xbar and R), 6.3.2.2 (Xbar and S), 6.3.2.3 (individuals).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from spc_core import constants
from spc_core._checks import as_1d_float, check_positive, check_span
from spc_core.charts.result import DISPERSION_RULES, LOCATION_RULES, ChartResult, shewhart
from spc_core.sigma import (
    INDIVIDUAL_METHODS,
    SUBGROUP_METHODS,
    c4_any,
    estimate_sigma,
    moving_range,
)
from spc_core.subgroups import as_subgroups, subgroup_stats


class ImrLimits(NamedTuple):
    """Phase I limits of an individuals chart and its moving-range companion.

    ``sigma`` is the within (short-term) sigma of the individual values, MR-bar / d2(mr_span).
    """

    center: float
    sigma: float
    ucl: float
    lcl: float
    mr_center: float
    mr_ucl: float
    mr_lcl: float


class ProcessParams(NamedTuple):
    """Process mean and (within) sigma behind a variables chart, and how sigma was obtained."""

    mean: float
    sigma: float
    sigma_method: str = "given"


def check_params(params: object) -> ProcessParams:
    if not isinstance(params, ProcessParams):
        raise TypeError(f"params must be a ProcessParams, got {type(params).__name__}")
    if not np.isfinite(params.mean):
        raise ValueError(f"params.mean must be finite, got {params.mean!r}")
    check_positive(params.sigma, "params.sigma")
    return params


def _individuals(values: object) -> np.ndarray:
    x = as_1d_float(values, "values")
    if np.isinf(x).any():
        raise ValueError("values must not contain infinite entries (use NaN for missing ones)")
    return x


# ---------------------------------------------------------------------------- individuals


def fit_individuals(values: object, *, sigma_method: str = "mr", mr_span: int = 2) -> ProcessParams:
    """Phase I estimate of mean and sigma from an individuals series (NaN skipped)."""
    x = _individuals(values)
    if sigma_method not in INDIVIDUAL_METHODS:
        raise ValueError(
            f"sigma_method for individuals must be one of {', '.join(INDIVIDUAL_METHODS)}, "
            f"got {sigma_method!r}"
        )
    finite = x[np.isfinite(x)]
    if finite.size == 0:
        raise ValueError("values must contain at least one non-NaN entry")
    sigma = estimate_sigma(x, sigma_method, mr_span=mr_span)
    if not sigma > 0:
        raise ValueError("values have zero variation: sigma estimate is 0, limits undefined")
    return ProcessParams(float(finite.mean()), sigma, sigma_method)


def imr_limits(values: object, mr_span: int = 2) -> ImrLimits:
    """Individuals and moving-range limits from a baseline.

    center = mean of the values, sigma = MR-bar / d2(mr_span), limits center +- 3 sigma;
    MR chart: MR-bar, D4 MR-bar, D3 MR-bar. NaN values are skipped (a moving range touching a NaN
    is not used). Constant values give sigma = 0 and limits equal to the center.
    """
    x = as_1d_float(values, "values")
    check_span(mr_span, "mr_span")
    total = float(x.sum())
    if np.isfinite(total) and mr_span == 2:
        # Fast path for the common case (no NaN, span 2): a few passes, no masks.
        center = total / len(x)
        mr_bar = float(np.abs(np.diff(x)).mean()) if len(x) >= 2 else float("nan")
    else:
        if np.isinf(x).any():
            raise ValueError("values must not contain infinite entries (use NaN for missing ones)")
        finite = np.isfinite(x)
        center = float(x[finite].mean()) if finite.any() else float("nan")
        mr = moving_range(x, mr_span)
        mr = mr[np.isfinite(mr)]
        mr_bar = float(mr.mean()) if mr.size else float("nan")
    if not np.isfinite(mr_bar):
        raise ValueError(
            f"values must contain at least {mr_span} consecutive non-NaN entries to form a moving "
            f"range of span {mr_span}, got {int(np.isfinite(x).sum())} non-NaN of {len(x)}"
        )
    sigma = mr_bar / constants.d2(mr_span)
    return ImrLimits(
        center=center,
        sigma=sigma,
        ucl=center + 3.0 * sigma,
        lcl=center - 3.0 * sigma,
        mr_center=mr_bar,
        mr_ucl=constants.D4(mr_span) * mr_bar,
        mr_lcl=constants.D3(mr_span) * mr_bar,
    )


def individuals_chart(values: object, params: ProcessParams) -> ChartResult:
    """I chart of `values` against `params`: center mean, limits mean +- 3 sigma."""
    x = _individuals(values)
    p = check_params(params)
    return shewhart(
        "i", x, p.mean, p.sigma,
        process_sigma=p.sigma, sigma_method=p.sigma_method, default_rules=LOCATION_RULES,
    )  # fmt: skip


def moving_range_chart(values: object, params: ProcessParams, *, mr_span: int = 2) -> ChartResult:
    """MR chart: center d2 sigma, limits (d2 +- 3 d3) sigma, lower clamped at 0 (= D3, D4 MR-bar).

    The first mr_span - 1 points have no moving range (NaN).
    """
    x = _individuals(values)
    p = check_params(params)
    mr = moving_range(x, mr_span)
    d2, d3 = constants.d2(mr_span), constants.d3(mr_span)
    return shewhart(
        "mr", mr, d2 * p.sigma, d3 * p.sigma, lower_bound=0.0,
        process_sigma=p.sigma, sigma_method=p.sigma_method, default_rules=DISPERSION_RULES,
    )  # fmt: skip


def imr(values: object, *, sigma_method: str = "mr", mr_span: int = 2) -> tuple[ChartResult, ...]:
    """Phase I I-MR charts: fit on `values` and score them."""
    params = fit_individuals(values, sigma_method=sigma_method, mr_span=mr_span)
    return individuals_chart(values, params), moving_range_chart(values, params, mr_span=mr_span)


# ---------------------------------------------------------------------------- subgroups


def _subgroups(data: object, min_size: int) -> np.ndarray:
    arr = as_subgroups(data)
    n = np.isfinite(arr).sum(axis=1)
    small = np.flatnonzero(n < min_size)
    if small.size:
        raise ValueError(
            f"data: subgroup {int(small[0])} has {int(n[small[0]])} value(s); this chart needs "
            f"subgroups of at least {min_size}"
        )
    if np.any(n > constants.N_MAX):
        raise ValueError(f"data: subgroups may have at most {constants.N_MAX} values")
    return arr


def fit_subgroups(data: object, *, sigma_method: str = "rbar") -> ProcessParams:
    """Phase I mean (sum n_i xbar_i / sum n_i) and sigma by a subgroup estimator.

    Default "rbar" for Xbar-R; use "sbar" (the Xbar-S default) or "pooled".
    """
    if sigma_method not in SUBGROUP_METHODS:
        raise ValueError(
            f"sigma_method for subgroups must be one of {', '.join(SUBGROUP_METHODS)}, "
            f"got {sigma_method!r}"
        )
    arr = _subgroups(data, 2)
    st = subgroup_stats(arr)
    mean = float(np.sum(st.n * st.mean) / np.sum(st.n))
    sigma = estimate_sigma(arr, sigma_method)
    if not sigma > 0:
        raise ValueError("data have zero within-subgroup variation: sigma estimate is 0")
    return ProcessParams(mean, sigma, sigma_method)


def xbar_chart(data: object, params: ProcessParams) -> ChartResult:
    """Xbar chart: subgroup means against mean +- 3 sigma/sqrt(n_i)."""
    arr = _subgroups(data, 1)
    p = check_params(params)
    st = subgroup_stats(arr)
    return shewhart(
        "xbar", st.mean, p.mean, p.sigma / np.sqrt(st.n),
        process_sigma=p.sigma, sigma_method=p.sigma_method, default_rules=LOCATION_RULES,
    )  # fmt: skip


def range_chart(data: object, params: ProcessParams) -> ChartResult:
    """R chart: center d2(n_i) sigma, limits (d2 +- 3 d3) sigma with the lower clamped at 0."""
    arr = _subgroups(data, 2)
    p = check_params(params)
    st = subgroup_stats(arr)
    return shewhart(
        "r", st.range, constants.d2(st.n) * p.sigma, constants.d3(st.n) * p.sigma,
        lower_bound=0.0,
        process_sigma=p.sigma, sigma_method=p.sigma_method, default_rules=DISPERSION_RULES,
    )  # fmt: skip


def s_chart(data: object, params: ProcessParams) -> ChartResult:
    """S chart: center c4(n_i) sigma, limits (c4 +- 3 sqrt(1 - c4^2)) sigma, lower clamped at 0."""
    arr = _subgroups(data, 2)
    p = check_params(params)
    st = subgroup_stats(arr)
    c4 = c4_any(st.n)
    return shewhart(
        "s", st.sd, c4 * p.sigma, np.sqrt(1 - c4**2) * p.sigma, lower_bound=0.0,
        process_sigma=p.sigma, sigma_method=p.sigma_method, default_rules=DISPERSION_RULES,
    )  # fmt: skip


def xbar_r(data: object, *, sigma_method: str = "rbar") -> tuple[ChartResult, ChartResult]:
    """Phase I Xbar-R charts: fit on `data` (subgroups x values) and score it."""
    params = fit_subgroups(data, sigma_method=sigma_method)
    return xbar_chart(data, params), range_chart(data, params)


def xbar_s(data: object, *, sigma_method: str = "sbar") -> tuple[ChartResult, ChartResult]:
    """Phase I Xbar-S charts: fit on `data` (subgroups x values) and score it."""
    params = fit_subgroups(data, sigma_method=sigma_method)
    return xbar_chart(data, params), s_chart(data, params)
