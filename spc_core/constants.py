"""Control-chart constants for subgroup sizes n = 2..100.

Sources:
- d2(n) = E[R]/sigma and d3(n) = SD[R]/sigma for the range R of n independent normal observations:
  Montgomery, *Introduction to Statistical Quality Control*, 6th ed., ch. 6 and Appendix Table VI;
  NIST/SEMATECH e-Handbook of Statistical Methods, section 6.3.2 ("What are variables control
  charts?"). They are computed here by numerical integration of the distribution of the range
  (Tippett 1925) instead of being copied from a table, so every n up to 100 is available:
      d2 = integral over x of 1 - Phi(x)^n - (1 - Phi(x))^n
      E[R^2] = integral over r >= 0 of 2 r P(R > r),
      P(R <= r) = n * integral over x of phi(x) (Phi(x + r) - Phi(x))^(n-1)
- c4(n) = E[S]/sigma = sqrt(2/(n-1)) Gamma(n/2) / Gamma((n-1)/2)  (Montgomery ch. 6.3;
  NIST e-Handbook 6.3.2.2).
- Derived 3-sigma factors (Montgomery ch. 6, Appendix Table VI; NIST e-Handbook 6.3.2.1-6.3.2.2):
  A2 = 3/(d2 sqrt n), A3 = 3/(c4 sqrt n), B3 = max(0, 1 - 3 sqrt(1-c4^2)/c4),
  B4 = 1 + 3 sqrt(1-c4^2)/c4, D3 = max(0, 1 - 3 d3/d2), D4 = 1 + 3 d3/d2, E2 = 3/d2.

The tables are computed once, lazily, and cached (about 0.1 s).
"""

from __future__ import annotations

from functools import cache
from typing import NamedTuple

import numpy as np
from scipy import integrate, special, stats

N_MIN = 2
N_MAX = 100


class ConstantsTable(NamedTuple):
    """One array per constant, indexed by subgroup size n (entries 0 and 1 are NaN)."""

    d2: np.ndarray
    d3: np.ndarray
    c4: np.ndarray
    A2: np.ndarray
    A3: np.ndarray
    B3: np.ndarray
    B4: np.ndarray
    D3: np.ndarray
    D4: np.ndarray
    E2: np.ndarray


def _d2_d3(n_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # Uniform grids with Simpson's rule: the integrands are smooth and decay like the normal
    # density, so h = 0.03 on [-9, 9] (x) and [0, 12] (r) is accurate far beyond 4 decimals.
    x = np.linspace(-9.0, 9.0, 601)
    r = np.linspace(0.0, 12.0, 401)
    cdf_x = stats.norm.cdf(x)
    pdf_x = stats.norm.pdf(x)
    # P(x < X < x + r) for every (r, x) pair, shared by every n.
    inside = np.clip(stats.norm.cdf(x[None, :] + r[:, None]) - cdf_x[None, :], 0.0, 1.0)
    log_inside = np.log(np.where(inside > 0, inside, 1.0))
    d2 = np.empty(len(n_values))
    d3 = np.empty(len(n_values))
    for j, n in enumerate(n_values):
        d2[j] = integrate.simpson(1.0 - cdf_x**n - (1.0 - cdf_x) ** n, x=x)
        p_range_le = n * integrate.simpson(
            pdf_x[None, :] * np.where(inside > 0, np.exp((n - 1) * log_inside), 0.0), x=x, axis=1
        )
        e_r2 = integrate.simpson(2.0 * r * (1.0 - p_range_le), x=r)
        d3[j] = np.sqrt(e_r2 - d2[j] ** 2)
    return d2, d3


@cache
def table() -> ConstantsTable:
    """All constants for n = 0..N_MAX (NaN for n < 2), computed once."""
    n = np.arange(N_MAX + 1, dtype=float)
    valid = n >= N_MIN
    d2 = np.full(n.shape, np.nan)
    d3 = np.full(n.shape, np.nan)
    d2[valid], d3[valid] = _d2_d3(n[valid].astype(int))
    c4 = np.full(n.shape, np.nan)
    nv = n[valid]
    c4[valid] = np.sqrt(2.0 / (nv - 1)) * np.exp(
        special.gammaln(nv / 2) - special.gammaln((nv - 1) / 2)
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        sqrt_n = np.sqrt(n)
        spread_s = 3.0 * np.sqrt(1.0 - c4**2) / c4
        spread_r = 3.0 * d3 / d2
        consts = ConstantsTable(
            d2=d2,
            d3=d3,
            c4=c4,
            A2=3.0 / (d2 * sqrt_n),
            A3=3.0 / (c4 * sqrt_n),
            B3=np.maximum(0.0, 1.0 - spread_s),
            B4=1.0 + spread_s,
            D3=np.maximum(0.0, 1.0 - spread_r),
            D4=1.0 + spread_r,
            E2=3.0 / d2,
        )
    for arr in consts:
        arr.setflags(write=False)
    return consts


def _lookup(name: str, n: int | np.ndarray) -> float | np.ndarray:
    arr = np.asarray(n)
    if arr.dtype.kind not in "iu" and not (
        arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr))
    ):
        raise TypeError(f"n must be an integer subgroup size (or array of them), got {n!r}")
    idx = arr.astype(int)
    if np.any(idx < N_MIN) or np.any(idx > N_MAX):
        raise ValueError(f"n must be between {N_MIN} and {N_MAX}, got {n!r}")
    values = getattr(table(), name)[idx]
    return float(values) if values.ndim == 0 else values


def d2(n: int | np.ndarray) -> float | np.ndarray:
    """Mean of the relative range R/sigma of n normal observations."""
    return _lookup("d2", n)


def d3(n: int | np.ndarray) -> float | np.ndarray:
    """Standard deviation of the relative range R/sigma of n normal observations."""
    return _lookup("d3", n)


def c4(n: int | np.ndarray) -> float | np.ndarray:
    """Mean of S/sigma for the sample standard deviation S of n normal observations."""
    return _lookup("c4", n)


def A2(n: int | np.ndarray) -> float | np.ndarray:
    """Xbar-R limit factor: Xbarbar +- A2 Rbar."""
    return _lookup("A2", n)


def A3(n: int | np.ndarray) -> float | np.ndarray:
    """Xbar-S limit factor: Xbarbar +- A3 Sbar."""
    return _lookup("A3", n)


def B3(n: int | np.ndarray) -> float | np.ndarray:
    """S chart lower limit factor: B3 Sbar."""
    return _lookup("B3", n)


def B4(n: int | np.ndarray) -> float | np.ndarray:
    """S chart upper limit factor: B4 Sbar."""
    return _lookup("B4", n)


def D3(n: int | np.ndarray) -> float | np.ndarray:
    """R chart lower limit factor: D3 Rbar."""
    return _lookup("D3", n)


def D4(n: int | np.ndarray) -> float | np.ndarray:
    """R chart upper limit factor: D4 Rbar."""
    return _lookup("D4", n)


def E2(n: int | np.ndarray) -> float | np.ndarray:
    """Individuals limit factor from the mean moving range of span n: Xbar +- E2 MRbar."""
    return _lookup("E2", n)
