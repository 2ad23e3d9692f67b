"""Western Electric rules 1-4 on hand-built sequences (center 0, sigma 1 unless stated).

Rule definitions: Western Electric Statistical Quality Control Handbook (1956); Montgomery,
Introduction to Statistical Quality Control, 6th ed., section 5.3.6; NIST/SEMATECH e-Handbook
6.3.2 (WECO rules). Conventions (boundary points, NaN, completing point) are those documented in
the spc_core.rules module docstring. Every expected index below was worked out by hand.
"""

from __future__ import annotations

import numpy as np
import pytest

from spc_core import rules
from spc_core.rules import evaluate_rules, find_violations


def fired(x: list[float], rule: str, center: object = 0.0, sigma: object = 1.0) -> list[int]:
    return evaluate_rules(np.array(x, dtype=float), center, sigma, rule)[rule].tolist()


# ---------------------------------------------------------------- rule 1: beyond 3 sigma


def test_we1_fires_only_strictly_beyond_three_sigma() -> None:
    x = [0.0, 3.0, 3.0001, -3.0, -3.2, 2.99]
    assert fired(x, "we1") == [2, 4]  # exactly +-3 sigma is on the limit, not beyond it


def test_we1_uses_per_point_limits() -> None:
    # Same values, per-point sigma: 4 > 3*1 fires, 4 < 3*2 does not.
    x = [4.0, 4.0, 4.0]
    assert fired(x, "we1", center=0.0, sigma=np.array([1.0, 2.0, 1.0])) == [0, 2]
    assert fired(x, "we1", center=np.array([0.0, 0.0, 2.0]), sigma=1.0) == [0, 1]


# ---------------------------------------------------------------- rule 2: 2 of 3 beyond 2 sigma


def test_we2_two_of_three_same_side() -> None:
    x = [2.5, 0.0, 2.1, 0.0, 0.0, 2.2, 0.0, -2.5, -2.5]
    # index 2: window (0,1,2) has 2.5 and 2.1 -> fires; index 5: window (3,4,5) only one;
    # index 8: window (6,7,8) has two below -> fires; index 7: window (5,6,7) 2.2 above, -2.5 below.
    assert fired(x, "we2") == [2, 8]


def test_we2_boundary_point_at_exactly_two_sigma_does_not_count() -> None:
    assert fired([2.0, 2.5, 0.0], "we2") == []
    assert fired([2.0000001, 2.5, 0.0], "we2") == [1]


def test_we2_completing_point_must_itself_be_beyond() -> None:
    # 2.5, 2.5 fires at 1; the following 0.0 has two beyond in its window but completes nothing.
    assert fired([2.5, 2.5, 0.0, 0.0], "we2") == [1]


def test_we2_at_the_start_of_the_series() -> None:
    # The series start acts like missing points: the first two points alone can complete 2 of 3.
    assert fired([2.5, 2.5], "we2") == [1]
    assert fired([2.5], "we2") == []


def test_we2_pattern_indices_are_the_beyond_points() -> None:
    v = find_violations(np.array([2.5, 0.0, 2.1]), 0.0, 1.0, "we2")
    assert v == [rules.Violation("we2", 2, (0, 2))]


# ---------------------------------------------------------------- rule 3: 4 of 5 beyond 1 sigma


def test_we3_four_of_five_same_side() -> None:
    x = [1.5, 1.5, 0.0, 1.5, 1.5, 0.0, -1.5]
    # index 4: window 0..4 has 4 above -> fires; index 5 (0.0) is not beyond; 6 is below.
    assert fired(x, "we3") == [4]


def test_we3_three_of_five_does_not_fire_and_sides_do_not_mix() -> None:
    assert fired([1.5, -1.5, 1.5, -1.5, 1.5], "we3") == []
    assert fired([1.5, 1.5, 0.0, 0.0, 1.5], "we3") == []


def test_we3_boundary_exactly_one_sigma_is_inner_zone() -> None:
    assert fired([1.0, 1.5, 1.5, 1.5, 1.5], "we3") == [4]  # 1.0 does not count
    assert fired([1.0, 1.0, 1.5, 1.5, 1.5], "we3") == []


def test_we3_pattern_indices() -> None:
    v = find_violations(np.array([1.5, 1.5, 0.0, 1.5, 1.5]), 0.0, 1.0, "we3")
    assert v == [rules.Violation("we3", 4, (0, 1, 3, 4))]


# ---------------------------------------------------------------- rule 4: 8 on one side


def test_we4_eight_in_a_row_fires_at_eighth_and_every_further_point() -> None:
    x = [0.1] * 10 + [-0.1]
    assert fired(x, "we4") == [7, 8, 9]


def test_we4_seven_is_not_enough_and_a_point_on_the_center_breaks_the_run() -> None:
    assert fired([0.1] * 7, "we4") == []
    assert fired([0.1] * 4 + [0.0] + [0.1] * 4, "we4") == []


def test_we4_pattern_is_the_whole_run() -> None:
    v = find_violations(np.full(8, -0.5), 0.0, 1.0, "we4")
    assert v == [rules.Violation("we4", 7, tuple(range(8)))]


def test_we4_with_per_point_center() -> None:
    # Values constant, center steps from 0 to 2 at index 4: the run above ends there.
    x = np.full(12, 1.0)
    center = np.where(np.arange(12) < 4, 0.0, 2.0)
    assert fired(x.tolist(), "we4", center=center) == [11]  # 8 below: indices 4..11


# ---------------------------------------------------------------- NaN handling


def test_nan_point_never_fires_and_breaks_runs() -> None:
    x = [0.1] * 5 + [np.nan] + [0.1] * 7
    assert fired(x, "we4") == []
    assert fired([np.nan, 5.0, np.inf], "we1") == [1]


def test_nan_counts_as_a_non_beyond_point_in_k_of_m() -> None:
    assert fired([2.5, np.nan, 2.5], "we2") == [2]
    assert fired([2.5, np.nan, np.nan, 2.5], "we2") == []


def test_nan_sigma_or_center_marks_the_point_missing() -> None:
    sigma = np.array([1.0, np.nan, 1.0])
    assert fired([5.0, 5.0, 5.0], "we1", sigma=sigma) == [0, 2]
    center = np.array([0.0, 0.0, np.nan])
    assert fired([5.0, 5.0, 5.0], "we1", center=center) == [0, 1]


# ---------------------------------------------------------------- the set and its output


def test_we_set_returns_every_rule_id_sorted_int_indices() -> None:
    x = np.array([0.0, 2.5, 0.0, 2.1, 0.0, 3.0, 3.01, -3.5, 1.5, 1.2, 0.5, 1.1, 1.3, *[0.2] * 8])
    out = evaluate_rules(x, 0.0, 1.0)  # default set is "we"
    assert list(out) == ["we1", "we2", "we3", "we4"]
    assert out["we1"].tolist() == [6, 7]
    assert out["we2"].tolist() == [3, 5, 6]
    assert out["we3"].tolist() == [9, 12]
    assert out["we4"].tolist() == [15, 16, 17, 18, 19, 20]
    for idx in out.values():
        assert idx.dtype.kind == "i"
        assert np.all(np.diff(idx) > 0)


def test_precedence_lowest_rule_first_at_a_point() -> None:
    x = np.array([2.5, 3.5])  # index 1 completes we1 and we2
    v = find_violations(x, 0.0, 1.0, "we")
    assert [(e.index, e.rule) for e in v] == [(1, "we1"), (1, "we2")]
    assert rules.primary_rule(v) == {1: "we1"}


def test_empty_series_gives_empty_results() -> None:
    out = evaluate_rules(np.array([], dtype=float), 0.0, 1.0, "we")
    assert all(v.size == 0 for v in out.values())


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"x": np.zeros((2, 2))}, ValueError, "x must be a 1-D array"),
        ({"x": ["a", "b"]}, TypeError, "x must be numeric"),
        ({"sigma": 0.0}, ValueError, "sigma must be > 0"),
        ({"sigma": np.array([1.0, -1.0, 1.0])}, ValueError, "sigma must be > 0"),
        ({"center": np.zeros(2)}, ValueError, "center must be a scalar or have the shape of x"),
        ({"sigma": "1"}, TypeError, "sigma must be numeric"),
        ({"rules": "weird"}, ValueError, "unknown rule or rule set 'weird'"),
        ({"rules": ""}, ValueError, "at least one rule"),
        ({"rules": 5}, TypeError, "rules must be"),
        ({"rules": "nelson2:2.5"}, ValueError, "integer parameter"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict, error: type[Exception], message: str) -> None:
    args = {"x": np.zeros(3), "center": 0.0, "sigma": 1.0, "rules": "we", **kwargs}
    with pytest.raises(error, match=message):
        evaluate_rules(**args)
