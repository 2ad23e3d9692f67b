"""Invariances (property tests): shifting all data shifts the limits, scaling scales them, and
neither changes which points violate a rule."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spc_core.charts import (
    ChartResult,
    ProcessParams,
    cusum_chart,
    ewma_chart,
    imr,
    xbar_r,
    xbar_s,
)

shift = st.floats(-1e3, 1e3, allow_nan=False)
scale = st.floats(0.01, 100.0, allow_nan=False)
seed = st.integers(0, 2**31)


def same_violations(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert a.keys() == b.keys()
    for rule in a:
        np.testing.assert_array_equal(a[rule], b[rule], err_msg=rule)


@settings(max_examples=40, deadline=None)
@given(seed, shift, scale)
def test_imr_is_affine_equivariant(s: int, a: float, b: float) -> None:
    x = np.random.default_rng(s).normal(5, 2, 60)
    i1, mr1 = imr(x)
    i2, mr2 = imr(b * x + a)
    np.testing.assert_allclose(i2.center, b * i1.center + a, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(i2.ucl, b * i1.ucl + a, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(i2.lcl, b * i1.lcl + a, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(mr2.ucl, b * mr1.ucl, rtol=1e-9)
    same_violations(i1.evaluate("nelson"), i2.evaluate("nelson"))


@settings(max_examples=30, deadline=None)
@given(seed, shift, scale, st.sampled_from([xbar_r, xbar_s]))
def test_subgroup_charts_are_affine_equivariant(
    s: int, a: float, b: float, chart: Callable[..., tuple[ChartResult, ChartResult]]
) -> None:
    data = np.random.default_rng(s).normal(0, 1, (25, 4))
    loc1, disp1 = chart(data)
    loc2, disp2 = chart(b * data + a)
    np.testing.assert_allclose(loc2.ucl, b * loc1.ucl + a, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(disp2.ucl, b * disp1.ucl, rtol=1e-9)
    np.testing.assert_allclose(disp2.center, b * disp1.center, rtol=1e-9)
    same_violations(loc1.evaluate("we"), loc2.evaluate("we"))


@settings(max_examples=30, deadline=None)
@given(seed, shift, scale)
def test_time_weighted_charts_are_affine_equivariant(s: int, a: float, b: float) -> None:
    x = np.random.default_rng(s).normal(0.5, 1, 80)
    p1, p2 = ProcessParams(0.0, 1.0), ProcessParams(a, b)
    e1, e2 = ewma_chart(x, p1), ewma_chart(b * x + a, p2)
    np.testing.assert_allclose(e2.statistic, b * e1.statistic + a, rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(e2.ucl, b * e1.ucl + a, rtol=1e-9, atol=1e-6)
    same_violations(e1.evaluate(), e2.evaluate())
    c1, c2 = cusum_chart(x, p1), cusum_chart(b * x + a, p2)
    # The tabular CUSUM is standardised: it does not change at all.
    np.testing.assert_allclose(c2.statistic, c1.statistic, atol=1e-6)


def test_zone_edges_come_from_the_sigma_of_the_plotted_statistic() -> None:
    data = np.random.default_rng(0).normal(0, 1, (20, 4))
    xbar, r = xbar_r(data)
    lower, upper = xbar.zone_edges(2)
    np.testing.assert_allclose(upper, xbar.center + 2 * xbar.process_sigma / 2)
    np.testing.assert_allclose(lower, xbar.center - 2 * xbar.process_sigma / 2)
    assert r.default_rules == ("nelson1",)
    assert xbar.default_rules == ("we",)
    assert list(r.evaluate()) == ["nelson1"]
    assert list(r.evaluate("nelson")) == [f"nelson{i}" for i in range(1, 9)]  # on request


@pytest.mark.parametrize("n", [1, 2, 3])
def test_tiny_series_do_not_crash_the_rules(n: int) -> None:
    i_chart, _ = imr(np.arange(n + 1, dtype=float) ** 2)
    assert all(v.size == 0 for v in i_chart.evaluate("nelson").values())
