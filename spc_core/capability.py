"""Process capability: Cp, Cpk, Cpm, Pp, Ppk, confidence intervals, expected PPM, normality.

* Within (short-term) sigma comes from the chart's estimator: pass the chart's `process_sigma`
  as `sigma_within`, or let it be estimated ("mr" for individuals, "rbar" for subgroups, any
  name from `spc_core.sigma`). Overall (long-term) sigma is the sample standard deviation.
* Cp = (USL - LSL)/(6 sigma_w), Cpk = min(Cpu, Cpl) with Cpu = (USL - mu)/(3 sigma_w),
  Cpl = (mu - LSL)/(3 sigma_w); Pp, Ppk the same with sigma_overall. With one spec limit only
  the matching one-sided index exists (Cpk = Cpu or Cpl); Cp, Pp and Cpm need both.
* Cpm = (USL - LSL) / (6 sqrt(sigma_overall^2 + (mu - T)^2)), only when a target T is given.
* Confidence intervals: chi-square for Cp and Pp (Montgomery eq. 8.19, nu = n - 1), Bissell's
  normal approximation for Cpk and Ppk (Montgomery eq. 8.21): Cpk +- z sqrt(1/(9n) +
  Cpk^2/(2(n-1))).
* Expected PPM out of spec below LSL and above USL, within and overall, from the normal model.
* Anderson-Darling normality test with estimated mean and SD: A^2, the small-sample adjusted
  A*^2 = A^2 (1 + 0.75/n + 2.25/n^2) and its p-value by D'Agostino and Stephens (1986, table
  4.9); a warning is added when normality is rejected at `alpha`, since every index and PPM
  figure here assumes a normal process.

Sources: Montgomery, *Introduction to Statistical Quality Control*, 6th ed., ch. 8 (8.3 capability
ratios, 8.3.5-8.3.6 confidence intervals, Cpm eq. 8.14); NIST/SEMATECH e-Handbook 6.1.6 (process
capability) and 1.3.5.14 (Anderson-Darling); Bissell, "How reliable is your capability index?",
Applied Statistics 39(3), 1990.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from spc_core._checks import as_float_array
from spc_core.sigma import estimate_sigma


@dataclass(frozen=True)
class Interval:
    low: float
    high: float
    confidence: float


@dataclass(frozen=True)
class NormalityTest:
    """Anderson-Darling test for normality (mean and SD estimated from the data)."""

    statistic: float
    adjusted_statistic: float
    p_value: float
    rejected: bool


@dataclass(frozen=True)
class Capability:
    """Capability indices (None where the specs given do not define them)."""

    n: int
    mean: float
    sigma_within: float
    sigma_overall: float
    lsl: float | None
    usl: float | None
    target: float | None
    cp: float | None
    cpl: float | None
    cpu: float | None
    cpk: float
    cpm: float | None
    pp: float | None
    ppl: float | None
    ppu: float | None
    ppk: float
    cp_ci: Interval | None
    cpk_ci: Interval
    pp_ci: Interval | None
    ppk_ci: Interval
    ppm_within_below: float
    ppm_within_above: float
    ppm_within_total: float
    ppm_overall_below: float
    ppm_overall_above: float
    ppm_overall_total: float
    normality: NormalityTest | None
    warnings: tuple[str, ...]


def _check_level(confidence: float) -> float:
    if not (isinstance(confidence, int | float) and 0 < confidence < 1):
        raise ValueError(f"confidence must be between 0 and 1, got {confidence!r}")
    return float(confidence)


def cp_confidence_interval(cp: float, n: int, confidence: float = 0.95) -> Interval:
    """Chi-square interval for Cp (or Pp) from n observations (Montgomery eq. 8.19)."""
    level = _check_level(confidence)
    if n < 2:
        raise ValueError(f"n must be at least 2 for a confidence interval, got {n}")
    alpha, dof = 1 - level, n - 1
    low = cp * np.sqrt(stats.chi2.ppf(alpha / 2, dof) / dof)
    high = cp * np.sqrt(stats.chi2.ppf(1 - alpha / 2, dof) / dof)
    return Interval(float(low), float(high), level)


def cpk_confidence_interval(cpk: float, n: int, confidence: float = 0.95) -> Interval:
    """Bissell's approximate interval for Cpk (or Ppk) (Montgomery eq. 8.21)."""
    level = _check_level(confidence)
    if n < 2:
        raise ValueError(f"n must be at least 2 for a confidence interval, got {n}")
    half = stats.norm.ppf(1 - (1 - level) / 2) * np.sqrt(1 / (9 * n) + cpk**2 / (2 * (n - 1)))
    return Interval(float(cpk - half), float(cpk + half), level)


def anderson_darling(values: object, alpha: float = 0.05) -> NormalityTest:
    """Anderson-Darling normality test with D'Agostino-Stephens p-value."""
    x = as_float_array(values, "values").ravel()
    x = np.sort(x[np.isfinite(x)])
    n = len(x)
    if n < 8:
        raise ValueError(f"values: the Anderson-Darling test needs at least 8 values, got {n}")
    sd = x.std(ddof=1)
    if sd == 0:
        raise ValueError("values are all equal: normality cannot be tested")
    z = (x - x.mean()) / sd
    i = np.arange(1, n + 1)
    logcdf = stats.norm.logcdf(z)
    logsf = stats.norm.logsf(z)
    a2 = float(-n - np.sum((2 * i - 1) * (logcdf + logsf[::-1])) / n)
    a2s = a2 * (1 + 0.75 / n + 2.25 / n**2)
    if a2s >= 0.6:
        p = np.exp(1.2937 - 5.709 * a2s + 0.0186 * a2s**2)
    elif a2s >= 0.34:
        p = np.exp(0.9177 - 4.279 * a2s - 1.38 * a2s**2)
    elif a2s >= 0.2:
        p = 1 - np.exp(-8.318 + 42.796 * a2s - 59.938 * a2s**2)
    else:
        p = 1 - np.exp(-13.436 + 101.14 * a2s - 223.73 * a2s**2)
    p = float(min(1.0, max(0.0, p)))
    return NormalityTest(a2, float(a2s), p, p < alpha)


def _spec(value: float | None, name: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"{name} must be a number or None, got {value!r}")
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return float(value)


def _ppm(mean: float, sigma: float, lsl: float | None, usl: float | None) -> tuple[float, float]:
    below = 0.0 if lsl is None else float(stats.norm.cdf((lsl - mean) / sigma) * 1e6)
    above = 0.0 if usl is None else float(stats.norm.sf((usl - mean) / sigma) * 1e6)
    return below, above


def capability(
    values: object,
    *,
    lsl: float | None = None,
    usl: float | None = None,
    target: float | None = None,
    sigma_within: float | None = None,
    sigma_method: str | None = None,
    confidence: float = 0.95,
    alpha: float = 0.05,
) -> Capability:
    """Capability of `values` (1-D individuals in time order, or 2-D subgroups) against specs."""
    arr = as_float_array(values, "values")
    if arr.ndim not in (1, 2):
        raise ValueError(f"values must be 1-D or 2-D (subgroups), got shape {arr.shape}")
    lo, hi, tgt = _spec(lsl, "lsl"), _spec(usl, "usl"), _spec(target, "target")
    if lo is None and hi is None:
        raise ValueError("capability needs at least one of lsl and usl")
    if lo is not None and hi is not None and not lo < hi:
        raise ValueError(f"lsl must be below usl, got lsl={lo:g}, usl={hi:g}")
    level = _check_level(confidence)
    flat = arr[np.isfinite(arr)]
    n = int(flat.size)
    if n < 2:
        raise ValueError(f"values must contain at least 2 non-NaN values, got {n}")
    mean = float(flat.mean())
    overall = float(flat.std(ddof=1))
    if sigma_within is None:
        method = sigma_method or ("mr" if arr.ndim == 1 else "rbar")
        within = estimate_sigma(arr, method)
    else:
        within = float(sigma_within)
        if not (np.isfinite(within) and within > 0):
            raise ValueError(f"sigma_within must be a finite number > 0, got {sigma_within!r}")
    if not (within > 0 and overall > 0):
        raise ValueError("values have no variation: capability indices are undefined")

    def indices(sigma: float) -> tuple[float | None, float | None, float | None, float]:
        upper = None if hi is None else (hi - mean) / (3 * sigma)
        lower = None if lo is None else (mean - lo) / (3 * sigma)
        both = None if lo is None or hi is None else (hi - lo) / (6 * sigma)
        return both, lower, upper, min(v for v in (upper, lower) if v is not None)

    cp, cpl, cpu, cpk = indices(within)
    pp, ppl, ppu, ppk = indices(overall)
    cpm = None
    warnings: list[str] = []
    if tgt is not None:
        if (lo is not None and tgt < lo) or (hi is not None and tgt > hi):
            warnings.append(f"target {tgt:g} lies outside the specification limits")
        if lo is not None and hi is not None:
            cpm = (hi - lo) / (6 * np.sqrt(overall**2 + (mean - tgt) ** 2))
    if (lo is not None and mean < lo) or (hi is not None and mean > hi):
        warnings.append(f"the process mean {mean:g} lies outside the specification limits")
    normality = None
    if n >= 8:
        normality = anderson_darling(flat, alpha)
        if normality.rejected:
            warnings.append(
                f"normality rejected (Anderson-Darling p = {normality.p_value:.4f} < {alpha:g}): "
                "indices and PPM assume a normal process and may be misleading"
            )
    else:
        warnings.append(f"only {n} values: normality not tested (needs 8)")
    wb, wa = _ppm(mean, within, lo, hi)
    ob, oa = _ppm(mean, overall, lo, hi)
    return Capability(
        n=n, mean=mean, sigma_within=within, sigma_overall=overall, lsl=lo, usl=hi, target=tgt,
        cp=cp, cpl=cpl, cpu=cpu, cpk=cpk, cpm=cpm, pp=pp, ppl=ppl, ppu=ppu, ppk=ppk,
        cp_ci=None if cp is None else cp_confidence_interval(cp, n, level),
        cpk_ci=cpk_confidence_interval(cpk, n, level),
        pp_ci=None if pp is None else cp_confidence_interval(pp, n, level),
        ppk_ci=cpk_confidence_interval(ppk, n, level),
        ppm_within_below=wb, ppm_within_above=wa, ppm_within_total=wb + wa,
        ppm_overall_below=ob, ppm_overall_above=oa, ppm_overall_total=ob + oa,
        normality=normality, warnings=tuple(warnings),
    )  # fmt: skip
