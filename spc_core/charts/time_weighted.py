"""Time-weighted charts: EWMA with exact time-varying limits, and the tabular CUSUM with FIR.

EWMA: z_i = lambda x_i + (1 - lambda) z_{i-1}, z_0 = mu. Its exact variance for subgroup sizes n_j
is Var z_i = sigma^2 sum_j lambda^2 (1-lambda)^(2(i-j)) / n_j, which for constant n is
sigma^2/n * lambda/(2-lambda) * (1 - (1-lambda)^(2i)) (Montgomery eq. 9.22): the limits start
narrow and widen to the asymptote. `exact=False` uses the asymptotic limits throughout.

Tabular CUSUM, standardised: y_i = (x_i - mu)/(sigma/sqrt(n_i)),
C+_i = max(0, y_i - k + C+_{i-1}), C-_i = max(0, -k - y_i + C-_{i-1}), signal when a sum exceeds
h. Both sums are in sigma units of the plotted mean, so h and k are as in the tables (h = 4 or 5,
k = 0.5). A fast initial response (FIR, Lucas and Crosier 1982) starts both sums at fir * h
(fir = 0.5 is the usual head start).

Both are computed without a Python loop: the EWMA with scipy.signal.lfilter, the CUSUM through the
closed form of the Lindley recursion, C_i = S_i - min(0, min_{j<=i} S_j) with S the running sum.
Missing points (NaN) leave the statistic unchanged: the EWMA skips them, the CUSUM adds 0; their
plotted value is NaN. Only rule 1 (beyond the chart's own limits) applies: the points of a
time-weighted chart are autocorrelated by construction.

Sources: Montgomery, *Introduction to Statistical Quality Control*, 6th ed., ch. 9 (9.1 CUSUM,
tabular form eqs. 9.2-9.3, FIR section 9.1.6, standardised CUSUM 9.1.5; 9.2 EWMA eqs. 9.21-9.23);
NIST/SEMATECH e-Handbook 6.3.2.4 (EWMA) and 6.3.2.3.1 (CUSUM).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

from spc_core._checks import as_1d_float, as_sizes, check_positive
from spc_core.charts.result import ChartResult
from spc_core.charts.variables import ProcessParams, check_params
from spc_core.rules import RuleSpec, Violation


def _series(values: object) -> np.ndarray:
    x = as_1d_float(values, "values")
    if np.isinf(x).any():
        raise ValueError("values must not contain infinite entries (use NaN for missing ones)")
    return x


def _beyond_rule(k: float) -> tuple[str, ...]:
    return ("nelson1",) if k == 3.0 else (f"nelson1:{k:g}",)


def ewma_chart(
    values: object,
    params: ProcessParams,
    *,
    lam: float = 0.2,
    L: float = 3.0,
    sizes: object = 1,
    exact: bool = True,
) -> ChartResult:
    """EWMA chart of individual values (or subgroup means of size `sizes`) against `params`."""
    x = _series(values)
    p = check_params(params)
    lam = check_positive(lam, "lam")
    if lam > 1:
        raise ValueError(f"lam must be in (0, 1], got {lam!r}")
    L = check_positive(L, "L")
    n = as_sizes(sizes, len(x))
    valid = np.isfinite(x)
    xv, nv = x[valid], n[valid]
    z = np.full(x.shape, np.nan)
    var = np.full(x.shape, np.nan)
    if xv.size:
        z[valid] = signal.lfilter([lam], [1.0, lam - 1.0], xv, zi=[(1.0 - lam) * p.mean])[0]
        if exact:
            var[valid] = signal.lfilter([lam**2], [1.0, -((1.0 - lam) ** 2)], p.sigma**2 / nv)
        else:
            var[valid] = lam / (2.0 - lam) * p.sigma**2 / nv
    sigma = np.sqrt(var)
    center = np.full(x.shape, p.mean)
    return ChartResult(
        chart="ewma",
        statistic=z,
        center=center,
        ucl=center + L * sigma,
        lcl=center - L * sigma,
        sigma=sigma,
        process_sigma=p.sigma,
        sigma_method=p.sigma_method,
        default_rules=_beyond_rule(L),
    )


@dataclass(frozen=True)
class CusumChart(ChartResult):
    """Tabular CUSUM: `statistic` is C+, `extra["lower"]` is C- (both >= 0, in sigma units),
    `ucl` is h and `lcl` is -h for plotting C- downwards. Its rules are "cusum_upper" (C+ > h)
    and "cusum_lower" (C- > h), reported at each point where the sum is beyond h."""

    def evaluate(self, rules: RuleSpec | None = None) -> dict[str, np.ndarray]:
        with np.errstate(invalid="ignore"):
            return {
                "cusum_upper": np.flatnonzero(self.statistic > self.ucl),
                "cusum_lower": np.flatnonzero(self.extra["lower"] > self.ucl),
            }

    def violations(self, rules: RuleSpec | None = None) -> list[Violation]:
        out = [Violation(r, int(i), (int(i),)) for r, idx in self.evaluate().items() for i in idx]
        out.sort(key=lambda v: (v.index, v.rule))
        return out


def _lindley(steps: np.ndarray, start: float) -> np.ndarray:
    """C_i = max(0, C_{i-1} + steps_i), C_0 = start >= 0, in closed form."""
    running = start + np.cumsum(steps)
    return running - np.minimum(0.0, np.minimum.accumulate(running))


def cusum_chart(
    values: object,
    params: ProcessParams,
    *,
    k: float = 0.5,
    h: float = 5.0,
    fir: float = 0.0,
    sizes: object = 1,
) -> CusumChart:
    """Tabular CUSUM of `values` (individuals, or subgroup means of size `sizes`)."""
    x = _series(values)
    p = check_params(params)
    if not (np.isfinite(k) and k >= 0):
        raise ValueError(f"k must be a finite number >= 0, got {k!r}")
    h = check_positive(h, "h")
    if not (np.isfinite(fir) and 0 <= fir < 1):
        raise ValueError(f"fir must be a head-start fraction of h in [0, 1), got {fir!r}")
    n = as_sizes(sizes, len(x))
    y = (x - p.mean) / (p.sigma / np.sqrt(n))
    missing = ~np.isfinite(y)
    upper = _lindley(np.where(missing, 0.0, y - k), fir * h)
    lower = _lindley(np.where(missing, 0.0, -k - y), fir * h)
    upper[missing] = np.nan
    lower[missing] = np.nan
    return CusumChart(
        chart="cusum",
        statistic=upper,
        center=np.zeros(x.shape),
        ucl=np.full(x.shape, h),
        lcl=np.full(x.shape, -h),
        sigma=np.full(x.shape, h / 3.0),
        process_sigma=p.sigma,
        sigma_method=p.sigma_method,
        default_rules=("cusum",),
        extra={"lower": lower},
    )
