"""p, np, c, u and Laney p'/u' charts against Montgomery / NIST examples and hand computations."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from spc_core.charts import (
    AttributeParams,
    c_chart,
    fit_c,
    fit_p,
    fit_u,
    np_chart,
    p_chart,
    u_chart,
)
from tests.spc_core.reference_data import (
    OJ_CANS_DEFECTIVES,
    PC_NONCONFORMITIES,
    PCB_NONCONFORMITIES,
)


def test_p_chart_orange_juice_cans() -> None:
    # Montgomery 6th ed., Example 7.1; NIST e-Handbook 6.3.3.2: p-bar 0.2313, UCL 0.4102,
    # LCL 0.0524 (the book rounds p-bar to 0.2313 first; exact LCL is 0.05245). Samples 15, 23 out.
    params = fit_p(OJ_CANS_DEFECTIVES, 50)
    chart = p_chart(OJ_CANS_DEFECTIVES, 50, params)
    assert round(params.rate, 4) == 0.2313
    assert round(chart.ucl[0], 4) == 0.4102
    assert chart.lcl[0] == pytest.approx(0.0524, abs=1e-4)
    assert chart.evaluate("nelson1")["nelson1"].tolist() == [14, 22]


def test_np_chart_same_data() -> None:
    params = fit_p(OJ_CANS_DEFECTIVES, 50)
    chart = np_chart(OJ_CANS_DEFECTIVES, 50, params)
    # Montgomery 6th ed., section 7.2.3: np chart limits are n times the p chart limits.
    assert chart.center[0] == pytest.approx(50 * params.rate)
    assert chart.ucl[0] == pytest.approx(50 * p_chart(OJ_CANS_DEFECTIVES, 50, params).ucl[0])
    assert chart.evaluate("nelson1")["nelson1"].tolist() == [14, 22]


def test_c_chart_circuit_boards() -> None:
    # Montgomery 6th ed., Example 7.3: c-bar 19.85, UCL 33.22, LCL 6.48 (the book uses the rounded
    # c-bar 19.85; exact UCL is 33.21). Samples 6 and 20 are beyond the limits.
    params = fit_c(PCB_NONCONFORMITIES)
    chart = c_chart(PCB_NONCONFORMITIES, params)
    assert round(params.rate, 2) == 19.85
    assert chart.ucl[0] == pytest.approx(33.22, abs=0.01)
    assert round(chart.lcl[0], 2) == 6.48
    assert chart.evaluate("nelson1")["nelson1"].tolist() == [5, 19]


def test_u_chart_personal_computers() -> None:
    # Montgomery 6th ed., Example 7.4: u-bar 1.93, UCL 3.79, LCL 0.07, no point out of control.
    params = fit_u(PC_NONCONFORMITIES, 5)
    chart = u_chart(PC_NONCONFORMITIES, 5, params)
    assert params.rate == pytest.approx(1.93)
    assert round(chart.ucl[0], 2) == 3.79
    assert round(chart.lcl[0], 2) == 0.07
    assert chart.evaluate("nelson1")["nelson1"].size == 0


def test_variable_sample_sizes_stair_steps_and_lcl_clamped_at_zero() -> None:
    d = np.array([1, 3, 0, 2])
    n = np.array([10, 100, 20, 50])
    params = fit_p(d, n)
    p_bar = 6 / 180
    assert params.rate == pytest.approx(p_bar)
    chart = p_chart(d, n, params)
    expected_ucl = p_bar + 3 * np.sqrt(p_bar * (1 - p_bar) / n)
    np.testing.assert_allclose(chart.ucl, expected_ucl)
    assert np.all(chart.lcl == 0.0)  # every formula LCL is negative here
    assert np.all(p_bar - 3 * np.sqrt(p_bar * (1 - p_bar) / n) < 0)


def test_p_chart_ucl_is_clamped_at_one() -> None:
    chart = p_chart([1], [2], AttributeParams(0.5))
    assert chart.ucl[0] == 1.0


def test_laney_p_prime_by_hand() -> None:
    d = np.array([10, 30, 20, 40])
    n = np.array([100, 100, 100, 100])
    p_bar = 0.25
    sigma_p = np.sqrt(p_bar * (1 - p_bar) / 100)
    z = (d / n - p_bar) / sigma_p
    sigma_z = np.mean(np.abs(np.diff(z))) / 1.128379167
    params = fit_p(d, n, laney=True)
    assert params.sigma_z == pytest.approx(sigma_z, rel=1e-6)
    chart = p_chart(d, n, params)
    assert chart.chart == "p'"
    np.testing.assert_allclose(chart.ucl, p_bar + 3 * sigma_p * sigma_z, rtol=1e-6)


def test_laney_sigma_z_near_one_for_binomial_and_large_when_overdispersed() -> None:
    rng = np.random.default_rng(5)
    n = np.full(400, 1000)
    binomial = rng.binomial(n, 0.1)
    assert fit_p(binomial, n, laney=True).sigma_z == pytest.approx(1.0, abs=0.12)
    overdispersed = rng.binomial(n, rng.uniform(0.05, 0.15, 400))
    assert fit_p(overdispersed, n, laney=True).sigma_z > 3
    counts = rng.poisson(rng.uniform(20, 60, 400) * 2)
    u_params = fit_u(counts, 2.0, laney=True)
    assert u_params.sigma_z > 2
    assert u_chart(counts, 2.0, u_params).chart == "u'"


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: fit_p([5, 11], [10, 10]), ValueError, r"defectives\[1\] = 11 exceeds"),
        (lambda: fit_p([-1, 2], 10), ValueError, r"defectives\[0\] must be a non-negative"),
        (lambda: fit_p([1.5, 2], 10), ValueError, r"defectives\[0\] must be a non-negative whole"),
        (lambda: fit_p([1, 2], [10, 0]), ValueError, r"sizes\[1\] must be a number > 0"),
        (lambda: fit_p([1, 2], [10, 10, 10]), ValueError, "one entry per sample"),
        (lambda: fit_p([0, 0], 10), ValueError, "0 < p-bar < 1"),
        (lambda: fit_c([1, np.nan]), ValueError, r"counts\[1\]"),
        (lambda: fit_c([0, 0]), ValueError, "c-bar is 0"),
        (lambda: fit_u(["a"], 1), TypeError, "counts must be numeric"),
        (lambda: c_chart([1, 2], AttributeParams(-1.0)), ValueError, "params.rate"),
        (lambda: p_chart([1], [2], AttributeParams(1.5)), ValueError, "params.rate"),
        (lambda: p_chart([1], [2], 0.5), TypeError, "params must be an AttributeParams"),
        (lambda: fit_p([1], [10], laney=True), ValueError, "at least 2 samples"),
    ],
)
def test_bad_input_is_named(
    call: Callable[[], object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        call()
