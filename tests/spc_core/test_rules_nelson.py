"""Nelson rules 1-8, AIAG, variants and rule selection on hand-built sequences, plus a property
test against a brute-force implementation written straight from the documented definitions.

Rule definitions: Nelson, J. Quality Technology 16(4), 1984; conventions (zone boundaries belong
to the inner zone, NaN breaks runs, report at the completing point) from the spc_core.rules
module docstring. Center 0 and sigma 1 unless stated; every expected index was worked by hand.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spc_core import rules
from spc_core.rules import Rule, evaluate_rules, find_violations, resolve_rules


def fired(x: list[float], rule: str, center: object = 0.0, sigma: object = 1.0) -> list[int]:
    return evaluate_rules(np.array(x, dtype=float), center, sigma, rule)[rule].tolist()


# ---------------------------------------------------------------- each rule


def test_nelson1_same_as_we1() -> None:
    assert fired([3.0, -3.0, 3.5, -3.01], "nelson1") == [2, 3]


def test_nelson2_nine_on_one_side() -> None:
    assert fired([0.5] * 8, "nelson2") == []
    assert fired([0.5] * 9 + [-0.5], "nelson2") == [8]
    assert fired([-0.5] * 11, "nelson2") == [8, 9, 10]
    # A side change at index 4 restarts the count: 9 below are 4..12.
    assert fired([0.5] * 4 + [-0.5] * 9, "nelson2") == [12]


def test_nelson3_six_increasing_or_decreasing() -> None:
    assert fired([1, 2, 3, 4, 5], "nelson3") == []
    assert fired([1, 2, 3, 4, 5, 6], "nelson3") == [5]
    assert fired([6, 5, 4, 3, 2, 1, 0], "nelson3") == [5, 6]
    # A tie is neither up nor down: it breaks the trend.
    assert fired([1, 2, 3, 3, 4, 5, 6], "nelson3") == []
    # Trend does not care about zones: the values can be far from the center.
    assert fired([10, 11, 12, 13, 14, 15], "nelson3", center=0.0) == [5]


def test_nelson4_fourteen_alternating() -> None:
    zigzag = [0.1 if i % 2 else -0.1 for i in range(14)]
    assert fired(zigzag[:13], "nelson4") == []
    assert fired(zigzag, "nelson4") == [13]
    assert fired([*zigzag, 0.1], "nelson4") == [13]  # 0.1 -> 0.1 is a tie: alternation broken
    assert fired([*zigzag, -0.1], "nelson4") == [13, 14]
    broken = zigzag.copy()
    broken[7] = broken[6]  # a tie in the middle
    assert fired(broken, "nelson4") == []


def test_nelson5_and_6_match_we2_and_we3() -> None:
    x = [2.5, 0.0, 2.1, 1.5, 1.5, 0.0, 1.5]
    assert fired(x, "nelson5") == fired(x, "we2") == [2]
    assert fired(x, "nelson6") == fired(x, "we3") == [4, 6]


def test_nelson7_fifteen_within_one_sigma_boundary_inclusive() -> None:
    inside = [0.5, -0.5] * 7 + [1.0]  # exactly 1 sigma counts as within
    assert fired(inside, "nelson7") == [14]
    assert fired(inside[:14], "nelson7") == []
    assert fired([*inside[:14], 1.01], "nelson7") == []


def test_nelson8_eight_beyond_one_sigma_either_side() -> None:
    mixture = [1.5, -1.5] * 4
    assert fired(mixture, "nelson8") == [7]
    assert fired([*mixture[:7], 1.0], "nelson8") == []  # exactly 1 sigma is not beyond
    assert fired([*mixture, -2.0, 0.0], "nelson8") == [7, 8]


def test_aiag_set_runs_of_seven_and_trends_of_seven() -> None:
    assert fired([0.2] * 7, "aiag2") == [6]
    assert fired([1, 2, 3, 4, 5, 6], "aiag3") == []
    assert fired([1, 2, 3, 4, 5, 6, 7], "aiag3") == [6]
    assert list(evaluate_rules(np.zeros(3), 0.0, 1.0, "aiag")) == ["aiag1", "aiag2", "aiag3"]


# ---------------------------------------------------------------- variants and selection


@pytest.mark.parametrize(("run", "first"), [(7, 6), (8, 7), (9, 8)])
def test_run_length_variants(run: int, first: int) -> None:
    rule_id = f"nelson2:{run}"
    assert fired([0.3] * 10, rule_id) == list(range(first, 10))


@pytest.mark.parametrize(("length", "first"), [(6, 5), (7, 6)])
def test_trend_length_variants(length: int, first: int) -> None:
    assert fired(list(range(9)), f"nelson3:{length}") == list(range(first, 9))


def test_beyond_and_k_of_m_variants() -> None:
    assert fired([2.6, 2.4], "nelson1:2.5") == [0]
    # "nelson5:3" is 3 out of 4 beyond 2 sigma.
    assert fired([2.5, 2.5, 0.0, 2.5], "nelson5:3") == [3]
    assert fired([2.5, 0.0, 0.0, 2.5], "nelson5:3") == []


def test_custom_list_keeps_order_and_drops_duplicates() -> None:
    resolved = resolve_rules(["nelson3", "we1", "nelson3", Rule("mine", "same_side", length=3)])
    assert [r.id for r in resolved] == ["nelson3", "we1", "mine"]
    assert [r.id for r in resolve_rules("we1, nelson2:7")] == ["we1", "nelson2:7"]
    out = evaluate_rules(np.array([0.1, 0.1, 0.1]), 0.0, 1.0, [Rule("mine", "same_side", length=3)])
    assert out["mine"].tolist() == [2]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kind": "zigzag"}, "kind must be one of"),
        ({"kind": "same_side", "length": 0}, "length must be a positive integer"),
        ({"kind": "trend", "length": 2}, "needs length >= 3"),
        ({"kind": "k_of_m", "length": 3, "count": 4}, "count must be between 1 and length"),
        ({"kind": "beyond", "z": -1.0}, "z must be a finite number >= 0"),
    ],
)
def test_invalid_rule_definitions(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Rule("bad", **kwargs)


def test_unknown_variant_base() -> None:
    with pytest.raises(ValueError, match="unknown rule 'nelson9'"):
        resolve_rules("nelson9:3")


# ---------------------------------------------------------------- overlaps and precedence


def test_overlapping_patterns_and_precedence_in_set_order() -> None:
    # Index 8 completes nelson2 (9 above), nelson3 (6 increasing: 3..8), nelson6 (4 of 5 beyond
    # 1 sigma: 5..8), nelson5 (2 of 3 beyond 2 sigma: 7, 8) and nelson1 (3.5 > 3).
    x = np.array([0.1, 0.2, 0.1, 0.2, 0.5, 1.2, 1.8, 2.5, 3.5])
    v = [e for e in find_violations(x, 0.0, 1.0, "nelson") if e.index == 8]
    assert [e.rule for e in v] == ["nelson1", "nelson2", "nelson3", "nelson5", "nelson6"]
    assert rules.primary_rule(v) == {8: "nelson1"}
    patterns = {e.rule: e.pattern for e in v}
    assert patterns["nelson2"] == tuple(range(9))
    assert patterns["nelson3"] == (3, 4, 5, 6, 7, 8)
    assert patterns["nelson5"] == (7, 8)
    assert patterns["nelson6"] == (5, 6, 7, 8)
    assert patterns["nelson1"] == (8,)


def test_dispersion_default_is_rule_one_only() -> None:
    assert rules.DISPERSION_RULES == ("nelson1",)


# ---------------------------------------------------------------- brute force from definitions


def brute_force(rule: Rule, x: np.ndarray, center: np.ndarray, sigma: np.ndarray) -> list[int]:
    """Straight-from-the-docstring reference: one Python loop per point, no shared tricks."""
    n = len(x)
    valid = np.isfinite(x) & np.isfinite(center) & np.isfinite(sigma)
    d = x - center
    out = []
    for i in range(n):
        if rule.kind == "beyond":
            ok = valid[i] and abs(d[i]) > rule.z * sigma[i]
        elif rule.kind == "k_of_m":
            ok = False
            for sign in (1, -1):
                if valid[i] and sign * d[i] > rule.z * sigma[i]:
                    window = range(max(0, i - rule.length + 1), i + 1)
                    hits = sum(1 for j in window if valid[j] and sign * d[j] > rule.z * sigma[j])
                    ok = ok or hits >= rule.count
        else:
            start = i - rule.length + 1
            if start < 0 or not all(valid[start : i + 1]):
                continue
            w = range(start, i + 1)
            if rule.kind == "same_side":
                ok = all(d[j] > 0 for j in w) or all(d[j] < 0 for j in w)
            elif rule.kind == "within":
                ok = all(abs(d[j]) <= rule.z * sigma[j] for j in w)
            elif rule.kind == "outside":
                ok = all(abs(d[j]) > rule.z * sigma[j] for j in w)
            elif rule.kind == "trend":
                steps = np.diff(x[start : i + 1])
                ok = bool(np.all(steps > 0) or np.all(steps < 0))
            else:
                steps = np.sign(np.diff(x[start : i + 1]))
                ok = bool(np.all(steps != 0) and np.all(steps[1:] == -steps[:-1]))
        if ok:
            out.append(i)
    return out


ALL_RULES = resolve_rules(["we", "nelson", "aiag", "nelson2:7", "nelson3:7", "nelson5:3"])
# Values on a half-sigma grid hit every zone boundary and produce ties; NaN marks missing points.
values = st.lists(
    st.one_of(st.sampled_from([-3.5, -3, -2.5, -2, -1.5, -1, -0.5, 0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5]),
              st.just(float("nan"))),
    min_size=0,
    max_size=60,
)  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(values, st.booleans(), st.integers(0, 2**31))
def test_vectorised_rules_equal_brute_force(xs: list[float], per_point: bool, seed: int) -> None:
    x = np.array(xs, dtype=float)
    rng = np.random.default_rng(seed)
    if per_point:
        center = rng.choice([0.0, 0.5], size=len(x))
        sigma = rng.choice([0.5, 1.0, 2.0, np.nan], size=len(x), p=[0.3, 0.3, 0.3, 0.1])
    else:
        center, sigma = np.zeros(len(x)), np.ones(len(x))
    got = evaluate_rules(x, center, sigma, ALL_RULES)
    for rule in ALL_RULES:
        assert got[rule.id].tolist() == brute_force(rule, x, center, sigma), rule.id


def test_blocked_evaluation_equals_single_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(9)
    x = np.round(rng.normal(0, 1.5, 5000) * 2) / 2
    x[rng.integers(0, 5000, 50)] = np.nan
    sigma = rng.choice([0.8, 1.0], 5000)
    whole = evaluate_rules(x, 0.0, sigma, ALL_RULES)
    monkeypatch.setattr(rules, "BLOCK_SIZE", 37)
    blocked = evaluate_rules(x, 0.0, sigma, ALL_RULES)
    for rule in ALL_RULES:
        np.testing.assert_array_equal(blocked[rule.id], whole[rule.id])
        assert blocked[rule.id].tolist() == brute_force(rule, x, np.zeros(5000), sigma)
