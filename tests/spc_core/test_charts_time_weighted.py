"""EWMA and tabular CUSUM against NIST / Montgomery examples and their defining recursions."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from spc_core.charts import ProcessParams, cusum_chart, ewma_chart
from tests.spc_core.reference_data import CUSUM_EXAMPLE, NIST_EWMA


def ewma_by_recursion(x: np.ndarray, mu: float, lam: float) -> np.ndarray:
    z, out = mu, []
    for v in x:
        z = lam * v + (1 - lam) * z
        out.append(z)
    return np.array(out)


def test_nist_ewma_example() -> None:
    # NIST/SEMATECH e-Handbook 6.3.2.4: target 50, s = 2.0539, lambda 0.3, k = 3.
    chart = ewma_chart(NIST_EWMA, ProcessParams(50.0, 2.0539), lam=0.3, L=3.0)
    assert chart.statistic[:3].round(2).tolist() == [50.60, 49.52, 50.56]
    np.testing.assert_allclose(chart.statistic, ewma_by_recursion(NIST_EWMA, 50.0, 0.3))
    # The exact limits converge to the handbook's asymptotic 52.5884 / 47.4115.
    assert round(chart.ucl[-1], 4) == 52.5884
    assert chart.lcl[-1] == pytest.approx(47.4115, abs=1e-4)  # printed truncated; exact 47.41159
    asymptotic = ewma_chart(NIST_EWMA, ProcessParams(50.0, 2.0539), lam=0.3, exact=False)
    assert np.all(asymptotic.ucl.round(4) == 52.5884)
    assert chart.evaluate()["nelson1"].size == 0  # the handbook's chart shows no signal


def test_ewma_exact_limits_follow_the_closed_form() -> None:
    # Montgomery 6th ed., eq. 9.22: L sigma sqrt(lambda/(2-lambda) (1 - (1-lambda)^(2i))).
    lam, L, sigma = 0.1, 2.7, 1.5
    chart = ewma_chart(np.zeros(30), ProcessParams(0.0, sigma), lam=lam, L=L)
    i = np.arange(1, 31)
    expected = L * sigma * np.sqrt(lam / (2 - lam) * (1 - (1 - lam) ** (2 * i)))
    np.testing.assert_allclose(chart.ucl, expected)
    assert chart.default_rules == ("nelson1:2.7",)


def test_ewma_subgroup_sizes_scale_the_variance() -> None:
    chart = ewma_chart([1.0], ProcessParams(0.0, 2.0), lam=0.5, sizes=4)
    assert chart.sigma[0] == pytest.approx(0.5 * 2.0 / 2.0)


def test_ewma_skips_missing_points() -> None:
    x = np.array([1.0, np.nan, 3.0])
    chart = ewma_chart(x, ProcessParams(0.0, 1.0), lam=0.5)
    assert np.isnan(chart.statistic[1])
    assert chart.statistic[2] == pytest.approx(0.5 * 3.0 + 0.5 * 0.5)


def test_montgomery_tabular_cusum() -> None:
    # Montgomery 6th ed., Example 9.1 / Table 9.2: C+_29 = 5.28 > H = 5, C+_30 = 5.30.
    chart = cusum_chart(CUSUM_EXAMPLE, ProcessParams(10.0, 1.0), k=0.5, h=5.0)
    assert round(chart.statistic[28], 2) == 5.28
    assert round(chart.statistic[29], 2) == 5.30
    signals = chart.evaluate()
    assert signals["cusum_upper"].tolist() == [28, 29]
    assert signals["cusum_lower"].tolist() == []
    # The book's first few lower sums: C-_1 = 0.05, C-_2 = 1.56, C-_3 = 1.77.
    assert chart.extra["lower"][:3].round(2).tolist() == [0.05, 1.56, 1.77]


def cusum_by_recursion(y: np.ndarray, k: float, start: float) -> np.ndarray:
    c, out = start, []
    for v in y:
        c = max(0.0, v - k + c)
        out.append(c)
    return np.array(out)


def test_cusum_fir_head_start_and_closed_form_equal_the_recursion() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(0.3, 1.0, 500)
    chart = cusum_chart(x, ProcessParams(0.0, 1.0), k=0.5, h=4.0, fir=0.5)
    np.testing.assert_allclose(chart.statistic, cusum_by_recursion(x, 0.5, 2.0), atol=1e-9)
    np.testing.assert_allclose(chart.extra["lower"], cusum_by_recursion(-x, 0.5, 2.0), atol=1e-9)


def test_cusum_missing_point_keeps_the_sums() -> None:
    chart = cusum_chart([2.0, np.nan, 2.0], ProcessParams(0.0, 1.0), k=0.5, h=5.0)
    assert np.isnan(chart.statistic[1])
    assert chart.statistic[2] == pytest.approx(3.0)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: ewma_chart([1.0], ProcessParams(0, 1), lam=1.5), ValueError, "lam must be in"),
        (lambda: ewma_chart([1.0], ProcessParams(0, 1), lam=0), ValueError, "lam must be"),
        (lambda: ewma_chart([1.0], ProcessParams(0, 1), L=-1), ValueError, "L must be"),
        (lambda: ewma_chart([np.inf], ProcessParams(0, 1)), ValueError, "infinite"),
        (lambda: cusum_chart([1.0], ProcessParams(0, 1), h=0), ValueError, "h must be"),
        (lambda: cusum_chart([1.0], ProcessParams(0, 1), k=-1), ValueError, "k must be"),
        (lambda: cusum_chart([1.0], ProcessParams(0, 1), fir=1.0), ValueError, "fir must be"),
        (lambda: cusum_chart([1.0], ProcessParams(0, 1), sizes=[1, 2]), ValueError, "sizes"),
    ],
)
def test_bad_input_is_named(
    call: Callable[[], object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        call()
