"""Estimators of the process sigma, selectable by name.

| name        | estimate                                                    | default for      |
|-------------|-------------------------------------------------------------|------------------|
| "rbar"      | mean over subgroups of R_i / d2(n_i)  (= R-bar/d2 for equal n) | Xbar-R, R        |
| "sbar"      | mean over subgroups of S_i / c4(n_i)  (= S-bar/c4 for equal n) | Xbar-S, S        |
| "pooled"    | sqrt(sum (n_i-1) S_i^2 / sum (n_i-1)) / c4(sum (n_i-1) + 1)  |                  |
| "mr"        | MR-bar / d2(span)                                           | I-MR, EWMA, CUSUM |
| "median_mr" | median MR / d4(span), d4 = median of the range distribution |                  |
| "overall"   | sample standard deviation of all values (ddof=1), no c4     | Pp, Ppk          |

Sources: Montgomery, *Introduction to Statistical Quality Control*, 6th ed., ch. 6 (R-bar/d2 eq.
6.6, S-bar/c4 section 6.3.1, median moving range section 6.4 with 0.954 for span 2); NIST/SEMATECH
e-Handbook 6.3.2; pooled SD with c4(d + 1) unbiasing as in ASTM E2587. Subgroups with fewer than
two values do not contribute to "rbar", "sbar" or "pooled".
"""

from __future__ import annotations

from functools import cache

import numpy as np
from scipy import integrate, optimize, special, stats

from spc_core import constants
from spc_core._checks import as_1d_float, check_span
from spc_core.subgroups import as_subgroups, subgroup_stats

SIGMA_METHODS: tuple[str, ...] = ("rbar", "sbar", "pooled", "mr", "median_mr", "overall")
SUBGROUP_METHODS: tuple[str, ...] = ("rbar", "sbar", "pooled")
INDIVIDUAL_METHODS: tuple[str, ...] = ("mr", "median_mr", "overall")


def c4_any(n: int | np.ndarray) -> float | np.ndarray:
    """c4 by the gamma formula for any n >= 2 (the pooled estimator needs n beyond 100)."""
    nn = np.asarray(n, dtype=float)
    return np.sqrt(2.0 / (nn - 1)) * np.exp(special.gammaln(nn / 2) - special.gammaln((nn - 1) / 2))


@cache
def median_range_factor(span: int) -> float:
    """d4(span): median of the relative range R/sigma of `span` normal observations."""
    check_span(span, "span")

    def cdf(r: float) -> float:
        def inner(x: float) -> float:
            return stats.norm.pdf(x) * (stats.norm.cdf(x + r) - stats.norm.cdf(x)) ** (span - 1)

        return span * integrate.quad(inner, -12, 12, epsabs=1e-13)[0]

    return float(optimize.brentq(lambda r: cdf(r) - 0.5, 1e-6, 12.0, xtol=1e-12))


def moving_range(values: object, span: int = 2, *, name: str = "values") -> np.ndarray:
    """Moving ranges max - min over each window of `span` consecutive values.

    The result has the length of `values`; the first span - 1 entries, and every window touching
    a NaN, are NaN.
    """
    x = as_1d_float(values, name, min_len=0)
    check_span(span, "mr_span")
    out = np.full(x.shape, np.nan)
    if len(x) >= span:
        # span - 1 shifted element-wise passes: much faster than reducing tiny window rows.
        n = len(x) - span + 1
        hi, lo = x[:n].copy(), x[:n].copy()
        for k in range(1, span):
            np.maximum(hi, x[k : k + n], out=hi)
            np.minimum(lo, x[k : k + n], out=lo)
        out[span - 1 :] = hi - lo
    return out


def _moving_ranges(values: np.ndarray, span: int) -> np.ndarray:
    if values.ndim != 1:
        raise ValueError(f"values must be 1-D for a moving-range estimator, got {values.shape}")
    mr = moving_range(values, span)
    return mr[np.isfinite(mr)]


def estimate_sigma(data: object, method: str, *, mr_span: int = 2) -> float:
    """Process sigma from `data` by the named estimator.

    Subgroup methods take a 2-D array (subgroups x values, NaN-padded); "mr" and "median_mr" a 1-D
    series in time order; "overall" any array.
    """
    if method not in SIGMA_METHODS:
        raise ValueError(f"sigma_method must be one of {', '.join(SIGMA_METHODS)}, got {method!r}")
    if method in SUBGROUP_METHODS:
        st = subgroup_stats(as_subgroups(data))
        use = st.n >= 2
        if not use.any():
            raise ValueError(f"sigma_method {method!r} needs at least one subgroup with 2+ values")
        n = st.n[use]
        if np.any(n > constants.N_MAX) and method == "rbar":
            raise ValueError(f"sigma_method 'rbar' needs subgroups of at most {constants.N_MAX}")
        if method == "rbar":
            return float(np.mean(st.range[use] / constants.d2(n)))
        if method == "sbar":
            return float(np.mean(st.sd[use] / c4_any(n)))
        dof = float(np.sum(n - 1))
        pooled = np.sqrt(np.sum((n - 1) * st.sd[use] ** 2) / dof)
        return float(pooled / c4_any(dof + 1))
    arr = np.asarray(data, dtype=float)
    if method == "overall":
        finite = arr[np.isfinite(arr)]
        if finite.size < 2:
            raise ValueError("sigma_method 'overall' needs at least 2 non-NaN values")
        return float(np.std(finite, ddof=1))
    check_span(mr_span, "mr_span")
    mr = _moving_ranges(arr, mr_span)
    if mr.size == 0:
        raise ValueError(
            f"sigma_method {method!r} needs at least {mr_span} consecutive non-NaN values"
        )
    if method == "mr":
        return float(mr.mean() / constants.d2(mr_span))
    return float(np.median(mr) / median_range_factor(mr_span))
