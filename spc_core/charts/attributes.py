"""Attributes charts: p, np (defectives), c, u (defects), and Laney p' / u' for over-dispersion.

Phase I: `fit_p` / `fit_u` / `fit_c` estimate the average rate (and, for Laney charts, the
between-sample inflation sigma_z); phase II: `p_chart`, `np_chart`, `c_chart`, `u_chart` score
data against given `AttributeParams` (a known standard p0 or u0 is `AttributeParams(p0)`).

Limits are rate +- 3 sigma_i with sigma_i from each sample's own size, so variable sample sizes
give stair-step limits; LCLs that the formula puts below 0 are clamped at 0, and p chart UCLs
above 1 at 1. Laney charts multiply sigma_i by sigma_z = MR-bar(z)/d2(2), where
z_i = (p_i - p-bar)/sigma_i are the baseline's standardised rates.

Sources: Montgomery, *Introduction to Statistical Quality Control*, 6th ed., ch. 7 (p chart
eq. 7.8, variable sample size section 7.2.2, np chart, c chart eq. 7.17, u chart eq. 7.19);
NIST/SEMATECH e-Handbook 6.3.3.1 (counts charts) and 6.3.3.2 (proportions charts); Laney,
"Improved control charts for attributes", Quality Engineering 14(4), 2002.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from spc_core import constants
from spc_core._checks import as_1d_float, as_sizes
from spc_core.charts.result import LOCATION_RULES, ChartResult, shewhart


class AttributeParams(NamedTuple):
    """Average rate (p-bar, u-bar or c-bar) and Laney's sigma_z (1.0 for the classic charts)."""

    rate: float
    sigma_z: float = 1.0


def _counts(values: object, name: str) -> np.ndarray:
    x = as_1d_float(values, name)
    bad = np.flatnonzero(~np.isfinite(x) | (x < 0) | (x != np.round(x)))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"{name}[{i}] must be a non-negative whole number, got {x[i]!r}")
    return x


def _defectives(defectives: object, sizes: object) -> tuple[np.ndarray, np.ndarray]:
    d = _counts(defectives, "defectives")
    n = as_sizes(sizes, len(d))
    if (n != np.round(n)).any():
        i = int(np.flatnonzero(n != np.round(n))[0])
        raise ValueError(f"sizes[{i}] must be a whole number of units, got {n[i]!r}")
    over = np.flatnonzero(d > n)
    if over.size:
        i = int(over[0])
        raise ValueError(
            f"defectives[{i}] = {d[i]:g} exceeds the sample size sizes[{i}] = {n[i]:g}"
        )
    return d, n


def _laney_sigma_z(rate: np.ndarray, center: float, sigma: np.ndarray) -> float:
    z = (rate - center) / sigma
    mr = np.abs(np.diff(z))
    if mr.size == 0:
        raise ValueError("a Laney chart needs at least 2 samples to estimate sigma_z")
    return float(mr.mean() / constants.d2(2))


def _check_params(params: object, upper: float = np.inf) -> AttributeParams:
    if not isinstance(params, AttributeParams):
        raise TypeError(f"params must be an AttributeParams, got {type(params).__name__}")
    if not (0 < params.rate < upper):
        raise ValueError(f"params.rate must be in (0, {upper:g}), got {params.rate!r}")
    if not (np.isfinite(params.sigma_z) and params.sigma_z > 0):
        raise ValueError(f"params.sigma_z must be a finite number > 0, got {params.sigma_z!r}")
    return params


# ---------------------------------------------------------------------------- defectives


def fit_p(defectives: object, sizes: object, *, laney: bool = False) -> AttributeParams:
    """p-bar = total defectives / total inspected; Laney sigma_z when `laney`."""
    d, n = _defectives(defectives, sizes)
    p_bar = float(d.sum() / n.sum())
    if not 0 < p_bar < 1:
        raise ValueError(f"defectives: p-bar is {p_bar:g}; a p chart needs 0 < p-bar < 1")
    sigma_z = _laney_sigma_z(d / n, p_bar, np.sqrt(p_bar * (1 - p_bar) / n)) if laney else 1.0
    return AttributeParams(p_bar, sigma_z)


def p_chart(defectives: object, sizes: object, params: AttributeParams) -> ChartResult:
    """p (or Laney p') chart of the fraction defective d_i/n_i."""
    d, n = _defectives(defectives, sizes)
    p = _check_params(params, 1.0)
    sigma = np.sqrt(p.rate * (1 - p.rate) / n) * p.sigma_z
    return shewhart(
        "p'" if p.sigma_z != 1.0 else "p", d / n, p.rate, sigma, lower_bound=0.0, upper_bound=1.0,
        process_sigma=float("nan"), sigma_method="laney" if p.sigma_z != 1.0 else "binomial",
        default_rules=LOCATION_RULES,
    )  # fmt: skip


def np_chart(defectives: object, sizes: object, params: AttributeParams) -> ChartResult:
    """np chart of the number defective d_i: center n_i p-bar, sigma sqrt(n_i p-bar (1-p-bar))."""
    d, n = _defectives(defectives, sizes)
    p = _check_params(params, 1.0)
    sigma = np.sqrt(n * p.rate * (1 - p.rate)) * p.sigma_z
    return shewhart(
        "np", d, n * p.rate, sigma, lower_bound=0.0, upper_bound=np.inf,
        process_sigma=float("nan"), sigma_method="binomial", default_rules=LOCATION_RULES,
    )  # fmt: skip


# ---------------------------------------------------------------------------- defects


def fit_c(counts: object) -> AttributeParams:
    """c-bar = mean count per inspection unit."""
    c = _counts(counts, "counts")
    c_bar = float(c.mean())
    if not c_bar > 0:
        raise ValueError("counts: c-bar is 0; a c chart needs at least one defect in the baseline")
    return AttributeParams(c_bar)


def c_chart(counts: object, params: AttributeParams) -> ChartResult:
    """c chart of counts per constant inspection unit: c-bar +- 3 sqrt(c-bar)."""
    c = _counts(counts, "counts")
    p = _check_params(params)
    return shewhart(
        "c", c, p.rate, np.sqrt(p.rate) * p.sigma_z, lower_bound=0.0,
        process_sigma=float("nan"), sigma_method="poisson", default_rules=LOCATION_RULES,
    )  # fmt: skip


def fit_u(counts: object, sizes: object, *, laney: bool = False) -> AttributeParams:
    """u-bar = total defects / total units inspected; Laney sigma_z when `laney`."""
    c = _counts(counts, "counts")
    n = as_sizes(sizes, len(c))
    u_bar = float(c.sum() / n.sum())
    if not u_bar > 0:
        raise ValueError("counts: u-bar is 0; a u chart needs at least one defect in the baseline")
    sigma_z = _laney_sigma_z(c / n, u_bar, np.sqrt(u_bar / n)) if laney else 1.0
    return AttributeParams(u_bar, sigma_z)


def u_chart(counts: object, sizes: object, params: AttributeParams) -> ChartResult:
    """u (or Laney u') chart of defects per unit c_i/n_i: u-bar +- 3 sqrt(u-bar/n_i)."""
    c = _counts(counts, "counts")
    n = as_sizes(sizes, len(c))
    p = _check_params(params)
    sigma = np.sqrt(p.rate / n) * p.sigma_z
    return shewhart(
        "u'" if p.sigma_z != 1.0 else "u", c / n, p.rate, sigma, lower_bound=0.0,
        process_sigma=float("nan"), sigma_method="laney" if p.sigma_z != 1.0 else "poisson",
        default_rules=LOCATION_RULES,
    )  # fmt: skip
