"""Process models in-process: seeded statistics, each disturbance's effect, the SPC rule it trips.

Rules are evaluated by spc_core against phase I limits fitted on the undisturbed stretch, as the
server does; each pattern is checked on several fixed seeds so no result hinges on one lucky draw.
"""

from __future__ import annotations

import numpy as np
import pytest

from simulators.config import DisturbanceSpec, VariableConfig
from simulators.disturbances import ActiveDisturbance
from simulators.process import VariableProcess
from spc_core.charts import imr_limits
from spc_core.rules import evaluate_rules

MEAN, SIGMA = 10.0, 1.0
SEEDS = [0, 1, 2, 3, 4]


def process(seed: int = 0, name: str = "x", machine: str = "M") -> VariableProcess:
    return VariableProcess(machine, VariableConfig(name=name, mean=MEAN, sigma=SIGMA), seed)


def disturbed(seed: int, kind: str, start: int, length: int, total: int, **kw) -> np.ndarray:
    p = process(seed)
    spec = DisturbanceSpec(kind=kind, variable="x", after_samples=start, for_samples=length, **kw)
    p.add(ActiveDisturbance(spec, "schedule"))
    return p.generate(total)


def test_undisturbed_process_has_the_configured_mean_and_sigma():
    x = process(seed=11).generate(20_000)
    # Standard errors: 1/sqrt(20000) = 0.007 for the mean, 0.005 for sigma.
    assert x.mean() == pytest.approx(MEAN, abs=0.03)
    assert x.std(ddof=1) == pytest.approx(SIGMA, abs=0.02)


def test_same_seed_same_values_and_streams_are_independent_per_variable():
    a, b = process(seed=5).generate(500), process(seed=5).generate(500)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, process(seed=6).generate(500))
    # Another variable (or machine) draws from its own stream.
    assert not np.array_equal(a, process(seed=5, name="y").generate(500))
    assert not np.array_equal(a, process(seed=5, machine="N").generate(500))


def test_a_disturbance_leaves_the_noise_stream_unchanged_outside_its_window():
    clean = process(seed=3).generate(400)
    x = disturbed(3, "shift", start=100, length=50, total=400, magnitude=2.0)
    assert np.array_equal(x[:100], clean[:100])
    assert np.allclose(x[100:150] - clean[100:150], 2.0 * SIGMA)
    assert np.array_equal(x[150:], clean[150:])


def test_shift_moves_the_mean_by_k_sigma():
    x = disturbed(7, "shift", start=2000, length=2000, total=4000, magnitude=1.5)
    before, after = x[:2000], x[2000:]
    assert before.mean() == pytest.approx(MEAN, abs=0.08)
    assert after.mean() - before.mean() == pytest.approx(1.5 * SIGMA, abs=0.1)
    assert after.std(ddof=1) == pytest.approx(SIGMA, abs=0.05)


def test_trend_adds_k_sigma_per_sample():
    clean = process(seed=1).generate(300)
    x = disturbed(1, "trend", start=100, length=100, total=300, magnitude=0.05)
    drift = x[100:200] - clean[100:200]
    assert np.allclose(drift, 0.05 * SIGMA * np.arange(1, 101))


def test_variance_increase_and_stratification_scale_sigma():
    wide = disturbed(2, "variance", start=1000, length=2000, total=3000, magnitude=2.0)
    narrow = disturbed(2, "stratification", start=1000, length=2000, total=3000, magnitude=0.2)
    assert wide[:1000].std(ddof=1) == pytest.approx(SIGMA, abs=0.07)
    assert wide[1000:].std(ddof=1) == pytest.approx(2.0 * SIGMA, abs=0.1)
    assert narrow[1000:].std(ddof=1) == pytest.approx(0.2 * SIGMA, abs=0.01)
    assert wide[1000:].mean() == pytest.approx(MEAN, abs=0.1)


def test_cycle_has_the_configured_period_and_amplitude():
    clean = process(seed=4).generate(256)
    x = disturbed(4, "cycle", start=0, length=256, total=256, magnitude=2.0, period=16)
    wave = x - clean
    k = np.arange(256)
    assert np.allclose(wave, 2.0 * SIGMA * np.sin(2 * np.pi * (k + 0.5) / 16))
    spectrum = np.abs(np.fft.rfft(x - x.mean()))
    assert np.argmax(spectrum) == 256 // 16


def test_mixture_alternates_between_two_means():
    x = disturbed(9, "mixture", start=0, length=2000, total=2000, magnitude=2.5)
    assert x[0::2].mean() == pytest.approx(MEAN + 2.5, abs=0.1)
    assert x[1::2].mean() == pytest.approx(MEAN - 2.5, abs=0.1)


def test_outliers_are_spikes_of_k_sigma_at_the_given_probability():
    clean = process(seed=8).generate(5000)
    x = disturbed(8, "outliers", start=0, length=5000, total=5000, magnitude=6.0,
                  probability=0.05)
    spikes = np.abs(x - clean)
    hit = spikes > 0
    assert np.allclose(spikes[hit], 6.0 * SIGMA)
    # Binomial(5000, 0.05): mean 250, sd 15.4.
    assert 200 < hit.sum() < 300


def test_stuck_sensor_repeats_its_last_value_and_dropout_gives_no_value():
    clean = process(seed=6).generate(200)
    stuck = disturbed(6, "stuck", start=50, length=100, total=200)
    assert np.all(stuck[50:150] == clean[49])
    assert np.array_equal(stuck[150:], clean[150:])
    p = process(seed=6)
    p.add(ActiveDisturbance(
        DisturbanceSpec(kind="dropout", variable="x", after_samples=10, for_samples=5), "schedule"
    ))
    samples = [p.next(float(i)) for i in range(20)]
    assert [s.quality for s in samples[8:17]] == ["good"] * 2 + ["bad"] * 5 + ["good"] * 2
    assert all(s.value is None for s in samples[10:15])


def test_schedule_in_seconds_starts_and_ends_on_process_time():
    p = process(seed=0)
    spec = DisturbanceSpec(kind="shift", variable="x", magnitude=100.0, after_seconds=2.0,
                           for_seconds=1.0)
    d = ActiveDisturbance(spec, "schedule")
    p.add(d)
    # 4 Hz: samples at 0, 0.25, ... ; active for 2.0 <= t < 3.0.
    values = [p.next(i * 0.25).value for i in range(20)]
    shifted = [i for i, v in enumerate(values) if v is not None and v > MEAN + 50]
    assert shifted == [8, 9, 10, 11]
    assert d.finished and d.samples_affected == 4


# Disturbance -> the rule that exists to catch it, each fired inside the disturbed window.
RULE_CASES = [
    ("shift", {"magnitude": 2.0}, 100, ("we1", "we2")),
    ("trend", {"magnitude": 1.0}, 30, ("nelson3",)),
    ("stratification", {"magnitude": 0.2}, 60, ("nelson7",)),
    ("mixture", {"magnitude": 2.5}, 100, ("nelson8",)),
    ("cycle", {"magnitude": 2.0, "period": 2}, 60, ("nelson4",)),
    ("variance", {"magnitude": 3.0}, 100, ("we1",)),
    ("outliers", {"magnitude": 6.0, "probability": 0.05}, 200, ("we1",)),
]


@pytest.mark.parametrize(("kind", "params", "length", "rules"), RULE_CASES,
                         ids=[c[0] for c in RULE_CASES])
@pytest.mark.parametrize("seed", SEEDS)
def test_spc_rules_flag_each_disturbance(kind, params, length, rules, seed):
    baseline = 200
    x = disturbed(seed, kind, start=baseline, length=length, total=baseline + length, **params)
    limits = imr_limits(x[:baseline])
    fired = evaluate_rules(x, limits.center, limits.sigma, rules=",".join(rules))
    in_window = sum(int(np.count_nonzero(idx >= baseline)) for idx in fired.values())
    before = sum(int(np.count_nonzero(idx < baseline)) for idx in fired.values())
    assert in_window >= 1, f"{kind} not flagged by {rules}"
    # The disturbance is flagged more often per point than the undisturbed baseline.
    assert in_window / length > before / baseline
