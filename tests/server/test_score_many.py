"""`charting.score_many` scores many characteristics with one vectorised rule evaluation per rule
set; every result must equal scoring each characteristic alone (`score_points`, whose rules are
evaluated by spc_core per segment), for every chart kind, across limits versions and with a
segment too long to be grouped."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from server.services import charting
from server.services.charting import ChartOptions, Points

T0 = datetime(2026, 2, 1, tzinfo=UTC)
FIELDS = ("statistic", "center", "ucl", "lcl", "sigma", "version")


def versions(rng: np.random.Generator, kind: str, n: int) -> list[dict]:
    """One to three limits versions starting inside (or before) the window."""
    count = int(rng.integers(1, 4))
    starts = sorted(rng.choice(np.arange(-5, max(n, 6)), size=count, replace=False))
    out = []
    for v, start in enumerate(starts, 1):
        if kind in ("p", "np"):
            center, sigma = float(rng.uniform(0.05, 0.2)), 1.0
        elif kind in ("c", "u"):
            center, sigma = float(rng.uniform(3, 8)), 1.0
        else:
            center, sigma = float(rng.normal(10, 0.3)), float(rng.uniform(0.5, 1.5))
        out.append({"version": v, "center": center, "sigma": sigma,
                    "effective_from": T0 + timedelta(seconds=int(start))})
    return out


def points(rng: np.random.Generator, kind: str, n: int) -> Points:
    ts = [T0 + timedelta(seconds=i) for i in range(n)]
    sizes = None
    if kind in charting.SUBGROUP_KINDS:
        data = rng.normal(10, 1, size=(n, 5))
        data[rng.random(n) < 0.1, -1] = np.nan  # short subgroups
    elif kind in ("p", "np"):
        sizes = rng.integers(40, 60, size=n).astype(float)
        data = rng.binomial(sizes.astype(int), 0.12).astype(float)
    elif kind == "u":
        sizes = rng.integers(2, 6, size=n).astype(float)
        data = rng.poisson(5 * sizes).astype(float)
    elif kind == "c":
        data = rng.poisson(5, size=n).astype(float)
    else:
        data = rng.normal(10, 1, size=n)
    if kind not in charting.ATTRIBUTE_KINDS and n > 30:  # shifts and spikes: rules fire
        data[n // 3: n // 3 + 12] += 1.5
        data[rng.integers(0, n, size=3)] += 5
    return Points(ts, data, sizes)


def assert_same(got: charting.Scored, want: charting.Scored) -> None:
    for name in FIELDS:
        np.testing.assert_array_equal(getattr(got, name), getattr(want, name), err_msg=name)
    assert (got.companion is None) == (want.companion is None)
    if want.companion is not None:
        for k, v in want.companion.items():
            np.testing.assert_array_equal(got.companion[k], v, err_msg=k)
    assert got.violations == want.violations
    assert list(got.violations) == list(want.violations)


@pytest.mark.parametrize("seed", range(6))
def test_many_at_once_equals_each_alone(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    grouped: list[int] = []  # the series count of each vectorised evaluation

    class Spy(charting.StreamingEvaluator):
        def __init__(self, rules, n_series: int = 1) -> None:
            grouped.append(n_series)
            super().__init__(rules, n_series)

    rng = np.random.default_rng(seed)
    items = []
    for kind in ("imr", "imr", "imr", "xbar-r", "xbar-s", "p", "np", "c", "u", "ewma", "cusum",
                 "imr", "imr"):
        n = int(rng.choice([0, 1, 2, 14, 15, 40, 220, 600]))
        rules = str(rng.choice(["we", "nelson", "we1,nelson2:7"]))
        items.append((kind, rules, ChartOptions(), points(rng, kind, n), versions(rng, kind, n)))
    items.append(("imr", "we", ChartOptions(), points(rng, "imr", 2 * charting.MANY_MAX_POINTS),
                  versions(rng, "imr", 2 * charting.MANY_MAX_POINTS)))
    monkeypatch.setattr(charting, "StreamingEvaluator", Spy)
    together = charting.score_many(items)
    assert max(grouped) >= 4  # several segments did go through one evaluation
    monkeypatch.undo()
    fired = 0
    for item, got in zip(items, together, strict=True):
        alone = charting.score_points(*item)
        assert_same(got, alone)
        ts, in_force = item[3].ts, item[4]
        want = [max((v["version"] for v in in_force if v["effective_from"] <= t), default=0)
                for t in ts]  # the last version in effect at each point's time, or none
        assert got.version.tolist() == want
        fired += len(alone.violations)
    assert fired > 0  # the data did make rules fire


def test_rules_of_a_segment_do_not_see_another_characteristic() -> None:
    """Seven points above the center in one characteristic and two more at the end of another
    must not make a run of nine (WE rule 4 / Nelson 2) for either."""
    start = [{"version": 1, "center": 10.0, "sigma": 1.0, "effective_from": T0}]
    a = Points([T0 + timedelta(seconds=i) for i in range(7)], np.full(7, 10.5))
    b = Points([T0 + timedelta(seconds=i) for i in range(20)],
               np.r_[np.full(18, 9.5), 10.5, 10.5])
    scored = charting.score_many([("imr", "nelson2", ChartOptions(), b, start),
                                  ("imr", "nelson2", ChartOptions(), a, start)])
    assert scored[0].violations == {i: ["nelson2"] for i in range(8, 18)}
    assert scored[1].violations == {}
