"""Sigma estimators by name, each checked against its defining formula."""

from __future__ import annotations

import numpy as np
import pytest

from spc_core import constants
from spc_core.sigma import SIGMA_METHODS, c4_any, estimate_sigma, median_range_factor
from spc_core.subgroups import from_labels, subgroup_stats
from tests.spc_core.reference_data import PISTON_RING_PHASE1


def test_rbar_and_sbar_on_piston_rings() -> None:
    r_bar = np.ptp(PISTON_RING_PHASE1, axis=1).mean()
    s_bar = PISTON_RING_PHASE1.std(axis=1, ddof=1).mean()
    assert estimate_sigma(PISTON_RING_PHASE1, "rbar") == pytest.approx(r_bar / constants.d2(5))
    assert estimate_sigma(PISTON_RING_PHASE1, "sbar") == pytest.approx(s_bar / constants.c4(5))


def test_pooled_sd_with_c4_of_total_degrees_of_freedom() -> None:
    data = np.array([[1.0, 2.0, 4.0], [3.0, 5.0, np.nan]])
    # S1^2 = 7/3 (2 dof), S2^2 = 2 (1 dof): pooled^2 = (2*7/3 + 2)/3; d = 3, c4(4).
    pooled = np.sqrt((2 * 7 / 3 + 2) / 3)
    assert estimate_sigma(data, "pooled") == pytest.approx(pooled / constants.c4(4))


def test_rbar_with_unequal_sizes_averages_r_over_d2() -> None:
    data = np.array([[1.0, 2.0, 4.0], [3.0, 5.0, np.nan]])
    expected = np.mean([3.0 / constants.d2(3), 2.0 / constants.d2(2)])
    assert estimate_sigma(data, "rbar") == pytest.approx(expected)


def test_moving_range_estimators() -> None:
    x = np.array([1.0, 3.0, 2.0, 6.0, 5.0])  # MR = 2, 1, 4, 1
    assert estimate_sigma(x, "mr") == pytest.approx(2.0 / constants.d2(2))
    # Montgomery 6th ed., section 6.4: median MR / 0.954 for span 2.
    assert median_range_factor(2) == pytest.approx(0.954, abs=5e-4)
    assert median_range_factor(2) == pytest.approx(np.sqrt(2) * 0.6744897501960817)
    assert estimate_sigma(x, "median_mr") == pytest.approx(1.5 / median_range_factor(2))
    assert estimate_sigma(x, "overall") == pytest.approx(np.std(x, ddof=1))


def test_c4_any_agrees_with_table_and_extends_it() -> None:
    assert c4_any(10) == pytest.approx(constants.c4(10))
    assert 0.999 < c4_any(1000) < 1.0


def test_from_labels_keeps_first_appearance_order() -> None:
    data, labels = from_labels([1.0, 2.0, 3.0, 4.0, 5.0], ["b", "a", "b", "c", "a"])
    assert labels.tolist() == ["b", "a", "c"]
    np.testing.assert_array_equal(data[:, 0], [1.0, 2.0, 4.0])
    st = subgroup_stats(data)
    assert st.n.tolist() == [2, 2, 1]
    assert np.isnan(st.sd[2])


@pytest.mark.parametrize(
    ("data", "method", "message"),
    [
        (np.ones((2, 2)), "magic", "sigma_method must be one of"),
        (np.array([[1.0, np.nan]]), "rbar", "at least one subgroup with 2"),
        (np.array([1.0]), "mr", "at least 2 consecutive"),
        (np.array([1.0]), "overall", "at least 2 non-NaN"),
    ],
)
def test_bad_input(data: np.ndarray, method: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        estimate_sigma(data, method)


def test_every_listed_method_is_accepted() -> None:
    rng = np.random.default_rng(0)
    for method in SIGMA_METHODS:
        data = (
            rng.normal(size=(10, 4))
            if method in ("rbar", "sbar", "pooled")
            else rng.normal(size=40)
        )
        assert estimate_sigma(data, method) > 0
