"""Individuals / moving-range limits (the server's contract: spc_core.charts.imr_limits)."""

from __future__ import annotations

import numpy as np
import pytest

from spc_core.charts import ImrLimits, imr_limits

# NIST/SEMATECH e-Handbook, section 6.3.2.3 "Individuals Control Charts", flow-rate example:
# x-bar = 50.81, MR-bar = 1.8778, UCL = 55.80, LCL = 45.82, MR chart UCL = 6.13.
NIST_FLOW_RATE = [49.6, 47.6, 49.9, 51.3, 47.8, 51.2, 52.6, 52.4, 53.6, 52.1]


def test_nist_individuals_example() -> None:
    lim = imr_limits(NIST_FLOW_RATE)
    assert isinstance(lim, ImrLimits)
    assert lim.center == pytest.approx(50.81, abs=1e-9)
    assert lim.mr_center == pytest.approx(1.8778, abs=1e-4)
    assert round(lim.ucl, 2) == 55.80
    assert round(lim.lcl, 2) == 45.82
    assert round(lim.mr_ucl, 2) == 6.13
    assert lim.mr_lcl == 0.0
    assert lim.sigma == pytest.approx(1.8778 / 1.128, rel=1e-3)


def test_hand_computed_small_series() -> None:
    # values 1, 3, 2, 6: MR = 2, 1, 4 -> MR-bar = 7/3; center = 3; sigma = (7/3) / d2(2).
    lim = imr_limits([1.0, 3.0, 2.0, 6.0])
    d2 = 2 / np.sqrt(np.pi)
    assert lim.center == pytest.approx(3.0)
    assert lim.mr_center == pytest.approx(7 / 3)
    assert lim.sigma == pytest.approx(7 / 3 / d2, rel=1e-9)
    assert lim.ucl == pytest.approx(3 + 3 * 7 / 3 / d2, rel=1e-9)
    assert lim.lcl == pytest.approx(3 - 3 * 7 / 3 / d2, rel=1e-9)


def test_span_three_uses_range_of_three() -> None:
    # values 1, 3, 2, 6: MR(3) = range(1,3,2) = 2, range(3,2,6) = 4 -> MR-bar = 3.
    lim = imr_limits([1.0, 3.0, 2.0, 6.0], mr_span=3)
    assert lim.mr_center == pytest.approx(3.0)
    assert lim.sigma == pytest.approx(3.0 / 1.6926, rel=1e-4)
    assert lim.mr_ucl == pytest.approx(2.5746 * 3.0, rel=1e-4)


def test_nan_values_are_skipped_and_break_moving_ranges() -> None:
    # MRs touching the NaN are dropped: |3-1| = 2 and |10-6| = 4 remain.
    lim = imr_limits([1.0, 3.0, np.nan, 6.0, 10.0])
    assert lim.mr_center == pytest.approx(3.0)
    assert lim.center == pytest.approx(5.0)


def test_shift_and_scale_invariance() -> None:
    rng = np.random.default_rng(3)
    x = rng.normal(10, 2, 50)
    a, b = imr_limits(x), imr_limits(5.0 * x + 7.0)
    assert b.center == pytest.approx(5 * a.center + 7)
    assert b.sigma == pytest.approx(5 * a.sigma)
    assert b.ucl == pytest.approx(5 * a.ucl + 7)
    assert b.mr_ucl == pytest.approx(5 * a.mr_ucl)


@pytest.mark.parametrize(
    ("values", "span", "error", "message"),
    [
        ([1.0], 2, ValueError, "at least 2 consecutive non-NaN"),
        ([1.0, np.nan, 2.0], 2, ValueError, "at least 2 consecutive non-NaN"),
        ([], 2, ValueError, "values must have at least 1"),
        ([[1.0, 2.0]], 2, ValueError, "values must be 1-D"),
        (["a", "b"], 2, TypeError, "values must be numeric"),
        ([1.0, np.inf, 2.0], 2, ValueError, "infinite"),
        ([1.0, 2.0, 3.0], 1, ValueError, "mr_span must be between 2 and 100"),
        ([1.0, 2.0, 3.0], 2.0, TypeError, "mr_span must be an integer"),
    ],
)
def test_bad_input_names_the_argument(
    values: list, span: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        imr_limits(values, mr_span=span)  # type: ignore[arg-type]
