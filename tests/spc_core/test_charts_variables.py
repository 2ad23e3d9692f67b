"""Xbar-R, Xbar-S, I-MR charts against Montgomery's piston-ring example and hand computations."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from spc_core import constants
from spc_core.charts import (
    ProcessParams,
    fit_individuals,
    fit_subgroups,
    imr,
    individuals_chart,
    moving_range_chart,
    range_chart,
    s_chart,
    xbar_chart,
    xbar_r,
    xbar_s,
)
from tests.spc_core.reference_data import PISTON_RING_PHASE1, PISTON_RING_PHASE2


def test_piston_ring_xbar_r_phase1_matches_montgomery() -> None:
    # Montgomery 6th ed., Example 6.1 / Table 6.3: x-double-bar 74.001, R-bar 0.023,
    # Xbar chart UCL 74.014, LCL 73.988; R chart UCL 0.048 (D4 R-bar), LCL 0.
    xbar, r = xbar_r(PISTON_RING_PHASE1)
    assert round(xbar.center[0], 3) == 74.001
    assert round(r.center[0], 3) == 0.023
    assert round(xbar.ucl[0], 3) == 74.014
    assert round(xbar.lcl[0], 3) == 73.988
    assert round(r.ucl[0], 3) == 0.048
    assert r.lcl[0] == 0.0
    # The identity behind it: limits = x-double-bar +- A2 R-bar exactly.
    r_bar = np.ptp(PISTON_RING_PHASE1, axis=1).mean()
    assert xbar.ucl[0] == pytest.approx(PISTON_RING_PHASE1.mean() + constants.A2(5) * r_bar)
    assert r.ucl[0] == pytest.approx(constants.D4(5) * r_bar)
    # Phase I is in control on both charts (Montgomery: "no indication of an out-of-control").
    assert all(v.size == 0 for v in r.evaluate().values())
    assert xbar.evaluate("nelson1")["nelson1"].size == 0
    # Zones come from the sigma of the subgroup mean, not of the individual values.
    assert xbar.sigma[0] == pytest.approx(xbar.process_sigma / np.sqrt(5))


def test_piston_ring_phase2_signals_at_samples_37_to_39() -> None:
    # Montgomery 6th ed., Example 6.1, Table 6.4: with the phase I limits frozen, samples 37, 38
    # and 39 (phase II indices 11, 12, 13) plot above the UCL of 74.014.
    params = fit_subgroups(PISTON_RING_PHASE1)
    chart = xbar_chart(PISTON_RING_PHASE2, params)
    assert chart.evaluate("nelson1")["nelson1"].tolist() == [11, 12, 13]
    assert np.all(chart.ucl == xbar_chart(PISTON_RING_PHASE1, params).ucl[0])


def test_piston_ring_xbar_s() -> None:
    # Montgomery 6th ed., Example 6.3 (same data): Xbar chart limits 74.014 and 73.988.
    # S-bar from this data is 0.00928; S chart limits are B3 S-bar = 0 and B4 S-bar.
    xbar, s = xbar_s(PISTON_RING_PHASE1)
    s_bar = PISTON_RING_PHASE1.std(axis=1, ddof=1).mean()
    assert round(xbar.ucl[0], 3) == 74.014
    assert round(xbar.lcl[0], 3) == 73.988
    assert xbar.ucl[0] == pytest.approx(PISTON_RING_PHASE1.mean() + constants.A3(5) * s_bar)
    assert s.center[0] == pytest.approx(s_bar)
    assert s.ucl[0] == pytest.approx(constants.B4(5) * s_bar)
    assert s.lcl[0] == 0.0
    assert s.sigma_method == "sbar"


def test_variable_subgroup_sizes_give_stair_step_limits() -> None:
    data = np.array([[1.0, 2.0, 3.0, np.nan], [2.0, 3.0, 4.0, 5.0], [1.0, 3.0, np.nan, np.nan]])
    params = ProcessParams(mean=3.0, sigma=1.0)
    xbar = xbar_chart(data, params)
    np.testing.assert_allclose(xbar.statistic, [2.0, 3.5, 2.0])
    np.testing.assert_allclose(xbar.ucl, 3.0 + 3.0 / np.sqrt([3, 4, 2]))
    r = range_chart(data, params)
    np.testing.assert_allclose(r.statistic, [2.0, 3.0, 2.0])
    np.testing.assert_allclose(r.center, constants.d2(np.array([3, 4, 2])))
    np.testing.assert_allclose(r.ucl, constants.D4(np.array([3, 4, 2])) * r.center)
    s = s_chart(data, params)
    np.testing.assert_allclose(s.statistic, [1.0, np.std([2, 3, 4, 5], ddof=1), np.sqrt(2)])
    np.testing.assert_allclose(s.ucl, constants.B4(np.array([3, 4, 2])) * s.center)


def test_subgroup_mean_is_weighted_by_size() -> None:
    data = np.array([[1.0, 1.0, 1.0, 1.0], [5.0, 7.0, np.nan, np.nan]])
    params = fit_subgroups(data, sigma_method="pooled")
    assert params.mean == pytest.approx((4 * 1.0 + 12.0) / 6)


def test_imr_charts_and_phase2_known_standard() -> None:
    x = np.array([10.0, 12.0, 11.0, 15.0, 9.0])
    i_chart, mr_chart = imr(x)
    mr_bar = np.mean([2.0, 1.0, 4.0, 6.0])
    assert i_chart.process_sigma == pytest.approx(mr_bar / constants.d2(2))
    assert mr_chart.center[1] == pytest.approx(mr_bar)
    assert mr_chart.ucl[1] == pytest.approx(constants.D4(2) * mr_bar)
    assert np.isnan(mr_chart.statistic[0])
    assert mr_chart.default_rules == ("nelson1",)
    known = individuals_chart([20.0, 10.0], ProcessParams(10.0, 2.0))
    assert known.evaluate("we1")["we1"].tolist() == [0]
    assert known.ucl.tolist() == [16.0, 16.0]


def test_shift_and_scale_move_limits_accordingly() -> None:
    rng = np.random.default_rng(11)
    data = rng.normal(5, 1, (20, 4))
    a_x, a_r = xbar_r(data)
    b_x, b_r = xbar_r(3.0 * data - 2.0)
    np.testing.assert_allclose(b_x.ucl, 3 * a_x.ucl - 2)
    np.testing.assert_allclose(b_x.lcl, 3 * a_x.lcl - 2)
    np.testing.assert_allclose(b_r.ucl, 3 * a_r.ucl)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: xbar_r(np.array([[1.0, 2.0], [3.0, np.nan]])), ValueError, "subgroup 1 has 1"),
        (lambda: xbar_r(np.ones((3, 3))), ValueError, "zero within-subgroup variation"),
        (lambda: xbar_r(np.zeros((2, 2, 2))), ValueError, "data must be 2-D"),
        (lambda: xbar_r([["a", "b"]]), TypeError, "data must be numeric"),
        (lambda: fit_subgroups(np.ones((2, 2)), sigma_method="mr"), ValueError, "sigma_method"),
        (lambda: fit_individuals([1.0, 2.0], sigma_method="rbar"), ValueError, "sigma_method"),
        (lambda: xbar_chart(np.ones((2, 2)), (1.0, 1.0)), TypeError, "params must be"),
        (lambda: xbar_chart(np.ones((2, 2)), ProcessParams(1.0, 0.0)), ValueError, "params.sigma"),
        (
            lambda: moving_range_chart([1.0, 2.0], ProcessParams(0, 1), mr_span=1),
            ValueError,
            "mr_span",
        ),
        (lambda: fit_individuals([3.0, 3.0, 3.0]), ValueError, "zero variation"),
    ],
)
def test_bad_input_is_named(
    call: Callable[[], object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        call()
