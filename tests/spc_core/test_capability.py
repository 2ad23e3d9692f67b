"""Capability indices, intervals, PPM and the Anderson-Darling test."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from scipy import stats

from spc_core import constants
from spc_core.capability import (
    anderson_darling,
    capability,
    cp_confidence_interval,
    cpk_confidence_interval,
)
from tests.spc_core.reference_data import PISTON_RING_PHASE1


def test_montgomery_confidence_intervals() -> None:
    # Montgomery 6th ed., Example 8.5: n = 20, Cp-hat = 1.33 -> 0.91 <= Cp <= 1.75 (chi-square).
    ci = cp_confidence_interval(1.33, 20, 0.95)
    assert (round(ci.low, 2), round(ci.high, 2)) == (0.91, 1.75)
    # Montgomery 6th ed., Example 8.6: n = 20, Cpk-hat = 1.33 -> 0.88 <= Cpk <= 1.78 (Bissell).
    ci = cpk_confidence_interval(1.33, 20, 0.95)
    assert (round(ci.low, 2), round(ci.high, 2)) == (0.88, 1.78)


def test_piston_ring_capability() -> None:
    # Montgomery 6th ed., section 6.2.1: specs 74.000 +- 0.05, sigma-hat = R-bar/d2 = 0.0099,
    # Cp = 0.10 / (6 * 0.0099) = 1.68.
    cap = capability(PISTON_RING_PHASE1, lsl=73.95, usl=74.05, sigma_within=0.0099)
    assert round(cap.cp, 2) == 1.68
    estimated = capability(PISTON_RING_PHASE1, lsl=73.95, usl=74.05)
    r_bar = np.ptp(PISTON_RING_PHASE1, axis=1).mean()
    assert estimated.sigma_within == pytest.approx(r_bar / constants.d2(5))
    assert estimated.pp == pytest.approx(0.1 / (6 * PISTON_RING_PHASE1.std(ddof=1)))


def test_indices_and_ppm_by_hand() -> None:
    x = np.array([9.0, 11.0, 10.0, 12.0, 8.0, 10.0, 9.5, 10.5, 11.5, 8.5])
    mean, sd = x.mean(), x.std(ddof=1)
    cap = capability(x, lsl=4.0, usl=19.0, target=11.0, sigma_within=1.5)
    assert cap.cp == pytest.approx(15 / 9)
    assert cap.cpu == pytest.approx((19 - mean) / 4.5)
    assert cap.cpl == pytest.approx((mean - 4) / 4.5)
    assert cap.cpk == pytest.approx(min(cap.cpu, cap.cpl))
    assert cap.pp == pytest.approx(15 / (6 * sd))
    assert cap.ppk == pytest.approx(min(19 - mean, mean - 4) / (3 * sd))
    assert cap.cpm == pytest.approx(15 / (6 * np.sqrt(sd**2 + (mean - 11) ** 2)))
    assert cap.ppm_within_below == pytest.approx(stats.norm.cdf((4 - mean) / 1.5) * 1e6)
    assert cap.ppm_within_above == pytest.approx(stats.norm.sf((19 - mean) / 1.5) * 1e6)
    assert cap.ppm_overall_total == pytest.approx(
        (stats.norm.cdf((4 - mean) / sd) + stats.norm.sf((19 - mean) / sd)) * 1e6
    )
    assert cap.warnings == ()


def test_one_sided_specs() -> None:
    x = np.random.default_rng(3).normal(10, 1, 100)
    upper = capability(x, usl=14.0)
    assert upper.cp is None and upper.pp is None and upper.cpl is None and upper.cp_ci is None
    assert upper.cpk == upper.cpu
    assert upper.ppm_within_below == 0.0
    lower = capability(x, lsl=6.0)
    assert lower.cpk == lower.cpl and lower.cpu is None


def test_indices_invariant_to_shift_and_scale() -> None:
    x = np.random.default_rng(8).normal(0, 1, 60)
    a = capability(x, lsl=-3.0, usl=4.0)
    b = capability(2 * x + 5, lsl=-1.0, usl=13.0)
    for name in ("cp", "cpk", "pp", "ppk", "ppm_within_total"):
        assert getattr(b, name) == pytest.approx(getattr(a, name))


def test_anderson_darling_statistic_and_p_value() -> None:
    x = np.random.default_rng(0).normal(size=50)
    result = anderson_darling(x)
    assert result.statistic == pytest.approx(
        stats.anderson(x, "norm", method="interpolate").statistic
    )
    assert not result.rejected


@pytest.mark.parametrize(("critical", "level"), [(0.752, 0.05), (1.035, 0.01), (0.631, 0.10)])
def test_anderson_darling_p_at_stephens_critical_values(critical: float, level: float) -> None:
    # D'Agostino & Stephens (1986), table 4.7, case 3: critical values of the adjusted A*^2.
    # Build data whose adjusted statistic equals the critical value by bisection on a skew.
    base = stats.norm.ppf((np.arange(1, 201) - 0.375) / 200.25)

    def adjusted(skew: float) -> float:
        return anderson_darling(base + skew * base**2).adjusted_statistic

    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if adjusted(mid) < critical else (lo, mid)
    assert anderson_darling(base + lo * base**2).p_value == pytest.approx(level, rel=0.1)


def test_warnings_for_non_normal_data_and_target_outside_specs() -> None:
    x = np.random.default_rng(1).exponential(size=100)
    cap = capability(x, lsl=0.0, usl=8.0, target=9.0)
    assert cap.normality is not None and cap.normality.rejected
    assert any("normality rejected" in w for w in cap.warnings)
    assert any("target 9 lies outside" in w for w in cap.warnings)
    small = capability([1.0, 2.0, 1.5], usl=5.0)
    assert small.normality is None and any("not tested" in w for w in small.warnings)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: capability([1.0, 2.0, 3.0]), ValueError, "at least one of lsl and usl"),
        (lambda: capability([1.0, 2.0], lsl=5.0, usl=1.0), ValueError, "lsl must be below usl"),
        (lambda: capability([1.0, 2.0], usl="5"), TypeError, "usl must be a number"),
        (lambda: capability([1.0, 2.0], usl=np.nan), ValueError, "usl must be finite"),
        (lambda: capability([1.0], usl=5.0), ValueError, "at least 2 non-NaN"),
        (lambda: capability([1.0, 1.0, 1.0], usl=5.0), ValueError, "no variation"),
        (lambda: capability([1.0, 2.0], usl=5.0, sigma_within=0), ValueError, "sigma_within"),
        (lambda: capability([1.0, 2.0], usl=5.0, confidence=1.5), ValueError, "confidence"),
        (lambda: capability([[[1.0]]], usl=5.0), ValueError, "values must be 1-D or 2-D"),
        (lambda: anderson_darling([1.0, 2.0]), ValueError, "at least 8 values"),
    ],
)
def test_bad_input_is_named(
    call: Callable[[], object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        call()
