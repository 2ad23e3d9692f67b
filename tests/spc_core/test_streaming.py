"""Streaming evaluator: any split into batches equals the batch result; many series at once;
state round-trips through bytes and JSON."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spc_core.rules import evaluate_rules
from spc_core.streaming import StreamingEvaluator

GRID = [-3.5, -3, -2.5, -2, -1.5, -1, -0.5, 0, 0.5, 1, 1.5, 2, 2.5, 3, 3.5]
points = st.lists(st.one_of(st.sampled_from(GRID), st.just(float("nan"))), max_size=80)


def collect(hits_per_batch: list[dict[str, np.ndarray]]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for hits in hits_per_batch:
        for rule_id, idx in hits.items():
            out.setdefault(rule_id, []).extend(int(i) for i in idx)
    return out


@settings(max_examples=120, deadline=None)
@given(points, st.lists(st.integers(1, 20), min_size=1, max_size=30), st.sampled_from(
    ["we", "nelson", "aiag", "nelson2:7,nelson3:7,nelson5:3"]
))  # fmt: skip
def test_any_split_into_batches_equals_batch(xs: list[float], cuts: list[int], rules: str) -> None:
    x = np.array(xs, dtype=float)
    sigma = np.where(np.arange(len(x)) % 7 == 3, 2.0, 1.0)  # per-point limits too
    expected = evaluate_rules(x, 0.0, sigma, rules)
    ev = StreamingEvaluator(rules)
    batches, start, i = [], 0, 0
    while start < len(x):
        stop = start + cuts[i % len(cuts)]
        batches.append(ev.update(x[start:stop], 0.0, sigma[start:stop]))
        start, i = stop, i + 1
    got = collect(batches)
    for rule_id, idx in expected.items():
        assert got.get(rule_id, []) == idx.tolist(), rule_id
    assert ev.count[0] == len(x)


def test_one_point_at_a_time_reports_only_new_violations() -> None:
    ev = StreamingEvaluator("we")
    seen = [ev.update(v, 0.0, 1.0) for v in [0.5] * 9]
    assert [h["we4"].tolist() for h in seen] == [[]] * 7 + [[7], [8]]
    assert ev.update(5.0, 0.0, 1.0)["we1"].tolist() == [9]


def test_many_series_one_vectorised_call_equals_each_series_alone() -> None:
    rng = np.random.default_rng(6)
    n_series, n_points = 300, 60
    data = np.round(rng.normal(0, 1.3, (n_points, n_series)) * 2) / 2
    ev = StreamingEvaluator("nelson", n_series=n_series)
    found: dict[str, set[tuple[int, int]]] = {}
    for t in range(n_points):
        for rule_id, hits in ev.update_all(data[t], 0.0, 1.0).items():
            found.setdefault(rule_id, set()).update(
                zip(hits.series.tolist(), hits.index.tolist(), strict=True)
            )
    for s in range(n_series):
        expected = evaluate_rules(data[:, s], 0.0, 1.0, "nelson")
        for rule_id, idx in expected.items():
            assert sorted(i for (ser, i) in found[rule_id] if ser == s) == idx.tolist()


def test_batches_for_many_series() -> None:
    data = np.zeros((10, 3))
    data[:, 1] = 0.5  # series 1 has 10 points above center: we4 at 7, 8, 9
    ev = StreamingEvaluator("we", n_series=3)
    first = ev.update_all(data[:8], 0.0, 1.0)["we4"]
    second = ev.update_all(data[8:], 0.0, 1.0)["we4"]
    assert (first.series.tolist(), first.index.tolist()) == ([1], [7])
    assert (second.series.tolist(), second.index.tolist()) == ([1, 1], [8, 9])


@pytest.mark.parametrize("codec", ["bytes", "json"])
def test_state_round_trip_continues_identically(codec: str) -> None:
    rng = np.random.default_rng(2)
    x = np.round(rng.normal(0, 1.2, (40, 5)) * 2) / 2
    x[5, 2] = np.nan
    a = StreamingEvaluator("nelson", n_series=5)
    a.update_all(x[:25], 0.0, 1.0)
    if codec == "bytes":
        b = StreamingEvaluator.from_bytes(a.to_bytes())
    else:
        b = StreamingEvaluator.from_json(a.to_json())
    ra, rb = a.update_all(x[25:], 0.0, 1.0), b.update_all(x[25:], 0.0, 1.0)
    for rule_id in ra:
        np.testing.assert_array_equal(ra[rule_id].series, rb[rule_id].series)
        np.testing.assert_array_equal(ra[rule_id].index, rb[rule_id].index)
    assert b.count.tolist() == [40] * 5


def test_state_is_bounded_by_the_longest_window() -> None:
    ev = StreamingEvaluator("nelson")
    ev.update(np.zeros(10_000), 0.0, 1.0)
    assert ev.window == 15
    assert ev._x.shape == (14, 1)


def test_reset_breaks_runs_but_keeps_counting() -> None:
    ev = StreamingEvaluator("we")
    ev.update(np.full(7, 0.5), 0.0, 1.0)
    ev.reset()
    assert ev.update(0.5, 0.0, 1.0)["we4"].size == 0
    assert ev.count[0] == 8


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: StreamingEvaluator("we", n_series=0), ValueError, "n_series must be at least 1"),
        (lambda: StreamingEvaluator("we", n_series=2.0), TypeError, "n_series must be an integer"),
        (lambda: StreamingEvaluator("bogus"), ValueError, "unknown rule or rule set"),
        (lambda: StreamingEvaluator(n_series=2).update(1.0, 0, 1), ValueError, "use update_all"),
        (lambda: StreamingEvaluator(n_series=2).update_all([1.0], 0, 1), ValueError, "shape"),
        (lambda: StreamingEvaluator().update(1.0, 0, -1.0), ValueError, "sigma must be > 0"),
        (lambda: StreamingEvaluator().update("a", 0, 1.0), TypeError, "x must be numeric"),
        (lambda: StreamingEvaluator.from_bytes(b"junk"), ValueError, "not a streaming"),
        (lambda: StreamingEvaluator.from_json("{"), ValueError, "invalid JSON"),
        (lambda: StreamingEvaluator.from_json('{"format": "x"}'), ValueError, "unknown format"),
    ],
)
def test_bad_input_is_named(
    call: Callable[[], object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        call()
