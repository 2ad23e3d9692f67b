"""Phase I iterative fitting, phase II scoring with frozen limits, and multi-phase series."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from spc_core.charts import AttributeParams, ProcessParams
from spc_core.phases import (
    ChartOptions,
    Exclusion,
    fit,
    fit_phase1,
    score,
    score_phases,
    starts_from_times,
)
from tests.spc_core.reference_data import (
    OJ_CANS_DEFECTIVES,
    PISTON_RING_PHASE1,
    PISTON_RING_PHASE2,
)


def test_p_chart_revised_limits_match_montgomery() -> None:
    # Montgomery 6th ed., Example 7.1: after dropping samples 15 and 23 (assignable causes) the
    # revised limits are p-bar 0.2150, UCL 0.3893, LCL 0.0407.
    one = fit_phase1("p", OJ_CANS_DEFECTIVES, sizes=50, max_iterations=1)
    assert one.excluded == (Exclusion(14, 1, "p:nelson1"), Exclusion(22, 1, "p:nelson1"))
    assert round(one.params.rate, 4) == 0.2150
    assert round(one.charts["p"].ucl[0], 4) == 0.3893
    assert round(one.charts["p"].lcl[0], 4) == 0.0407
    assert not one.converged
    # Iterating further also drops sample 21 (0.40 > 0.3893), as the book notes it plots beyond
    # the revised UCL; then the chart is stable.
    full = fit_phase1("p", OJ_CANS_DEFECTIVES, sizes=50)
    assert [e.index for e in full.excluded] == [14, 22, 20]
    assert full.excluded[-1].iteration == 2
    assert full.converged and full.iterations == 3
    assert full.included.sum() == 27


def test_piston_rings_phase1_is_stable_and_phase2_flags_37_to_39() -> None:
    base = fit_phase1("xbar-r", PISTON_RING_PHASE1)
    assert base.excluded == () and base.converged and base.iterations == 1
    charts = score("xbar-r", PISTON_RING_PHASE2, base.params)
    assert charts["xbar"].evaluate("nelson1")["nelson1"].tolist() == [11, 12, 13]
    # Phase II does not move the limits.
    assert charts["xbar"].ucl[0] == base.charts["xbar"].ucl[0]


def test_dispersion_chart_exclusion_is_reported() -> None:
    data = PISTON_RING_PHASE1.copy()
    data[3] = [73.95, 74.05, 74.0, 74.0, 74.0]  # same mean as typical, huge range
    result = fit_phase1("xbar-r", data)
    assert Exclusion(3, 1, "r:nelson1") in result.excluded
    assert not result.included[3]


def test_imr_iterative_exclusion_with_reasons() -> None:
    x = np.random.default_rng(1).normal(10, 1, 50)
    x[[5, 20]] = [20.0, -5.0]
    result = fit_phase1("imr", x)
    first = [e for e in result.excluded if e.iteration == 1]
    assert [(e.index, e.reason) for e in first] == [(5, "i:nelson1"), (20, "i:nelson1")]
    kept = x.copy()
    kept[~result.included] = np.nan
    assert result.params == fit("imr", kept)
    without = fit_phase1("imr", x, iterate=False)
    assert without.excluded == () and without.params.sigma > result.params.sigma


def test_phase1_with_run_rules_excludes_pattern_points() -> None:
    x = np.r_[np.zeros(10) + [0.5, -0.5] * 5, np.full(9, 0.9), [0.5, -0.5] * 5]
    result = fit_phase1("imr", x, rules="we4", max_iterations=1)
    # Center is 8.1/29 = 0.279: the run above it is indices 10..19 (the 0.5 at 19 is above too),
    # so we4 completes at 17, 18 and 19; the completing points are what gets excluded.
    assert [e.index for e in result.excluded] == [17, 18, 19]
    assert {e.reason for e in result.excluded} == {"i:we4"}


def test_known_standards_phase2() -> None:
    charts = score("imr", [10.0, 16.5], ProcessParams(10.0, 2.0))
    assert charts["i"].ucl.tolist() == [16.0, 16.0]
    assert charts["i"].evaluate("nelson1")["nelson1"].tolist() == [1]
    c = score("c", [3, 30], AttributeParams(10.0))
    assert c["c"].evaluate("nelson1")["nelson1"].tolist() == [1]


def test_options_choose_sigma_estimator_and_time_weighted_settings() -> None:
    params = fit("xbar-s", PISTON_RING_PHASE1, options=ChartOptions(sigma_method="pooled"))
    assert params.sigma_method == "pooled"
    ewma = score("ewma", np.zeros(5), ProcessParams(0, 1), options=ChartOptions(lam=0.5, L=2.5))
    assert ewma["ewma"].ucl[-1] == pytest.approx(2.5 * np.sqrt(0.5 / 1.5 * (1 - 0.5**10)))
    cusum = score("cusum", np.full(5, 2.0), ProcessParams(0, 1), options=ChartOptions(h=4.0))
    assert cusum["cusum"].evaluate()["cusum_upper"].tolist() == [2, 3, 4]


def test_multi_phase_each_segment_has_its_own_limits_and_runs_do_not_cross() -> None:
    rng = np.random.default_rng(4)
    first = rng.normal(10, 1, 40)
    second = rng.normal(20, 1, 40)
    x = np.r_[first, second]
    result = score_phases("imr", x, [40], rules="we")
    assert [(s.start, s.stop) for s in result.segments] == [(0, 40), (40, 80)]
    assert result.segments[0].params == fit("imr", first)
    assert result.segments[1].params == fit("imr", second)
    i_chart = result.charts["i"]
    assert i_chart.center[0] == pytest.approx(first.mean())
    assert i_chart.center[-1] == pytest.approx(second.mean())
    assert len(i_chart.statistic) == 80
    # Scored as one phase, the level change makes rule 4 fire all over; per phase it cannot
    # fire on a run that straddles index 40.
    one_phase = score_phases("imr", x, [], rules="we")
    assert one_phase.violations["i"]["we4"].size > 20
    assert all(not (33 <= i < 47) for i in result.violations["i"]["we4"])


def test_multi_phase_with_given_params_and_timestamps() -> None:
    times = np.array(["2026-01-01T00", "2026-01-01T01", "2026-01-01T02", "2026-01-01T03"],
                     dtype="datetime64[h]")  # fmt: skip
    starts = starts_from_times(times, np.array(["2026-01-01T02"], dtype="datetime64[h]"))
    assert starts == [2]
    result = score_phases(
        "c", [3, 4, 30, 31], starts, params=[AttributeParams(3.0), AttributeParams(30.0)]
    )
    assert result.charts["c"].center.tolist() == [3.0, 3.0, 30.0, 30.0]
    assert result.violations["c"]["we1"].size == 0


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: fit("xbar", PISTON_RING_PHASE1), ValueError, "chart must be one of"),
        (lambda: fit("p", [1, 2]), ValueError, "sizes is required for a p chart"),
        (
            lambda: fit_phase1("imr", [1.0, 2.0, 4.0], max_iterations=0),
            ValueError,
            "max_iterations",
        ),
        (lambda: score_phases("imr", [1.0, 2.0, 4.0], [5]), ValueError, "starts must be indices"),
        (
            lambda: score_phases("c", [1, 2, 3], [1], params=[AttributeParams(1.0)]),
            ValueError,
            "one entry per segment",
        ),
        (lambda: starts_from_times([3, 1], [2]), ValueError, "times must be sorted"),
        (
            lambda: fit("imr", [1.0, 2.0, 4.0], options=ChartOptions(sigma_method="rbar")),
            ValueError,
            "sigma_method for individuals",
        ),
    ],
)
def test_bad_input_is_named(
    call: Callable[[], object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        call()


def test_phase1_on_ewma_uses_rule_one_at_the_charts_own_limits() -> None:
    # With L = 2, a point beyond 2 EWMA-sigma is excluded even though it is inside 3 sigma.
    x = np.r_[np.random.default_rng(3).normal(0, 1, 40), 4.0]
    options = ChartOptions(lam=1.0, L=2.0)  # lambda = 1: the EWMA is the data itself
    result = fit_phase1("ewma", x, options=options, max_iterations=1)
    ewma = score("ewma", x, fit("ewma", x, options=options), options=options)["ewma"]
    beyond_two = np.flatnonzero(np.abs(ewma.statistic - ewma.center) > 2 * ewma.sigma)
    assert [e.index for e in result.excluded] == beyond_two.tolist()
    assert 40 in beyond_two
    assert {e.reason for e in result.excluded} == {"ewma:nelson1:2"}
