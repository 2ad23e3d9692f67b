"""The line runtime in-process on a stepped virtual clock: rates, timestamps, schedules, devices."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from simulators.clock import VirtualClock
from simulators.config import ConfigError, DisturbanceSpec, parse_line_config
from simulators.line import Event, LineSimulation, Published

LINE = {
    "line": "L",
    "sample_rate_hz": 2.0,
    "machines": [
        {"name": "M1", "variables": [
            {"name": "a", "mean": 10.0, "sigma": 1.0},
            {"name": "b", "mean": 5.0, "sigma": 0.1, "rate_hz": 10.0},
        ]},
        {"name": "M2", "unit_id": 7, "variables": [{"name": "c", "mean": 0.0, "sigma": 1.0}]},
    ],
}


def make_line(**overrides) -> tuple[LineSimulation, VirtualClock]:
    config = parse_line_config({**LINE, **overrides})
    clock = VirtualClock(speed=0, start=datetime(2026, 1, 1, tzinfo=UTC))
    return LineSimulation(config, seed=42, clock=clock), clock


async def test_virtual_clock_runs_minutes_of_process_at_each_rate():
    line, clock = make_line()
    got: list[Published] = []

    async def collect(batch: list[Event]) -> None:
        got.extend(e for e in batch if isinstance(e, Published))

    line.sample_listeners.append(collect)
    clock.advance(600.0)  # ten minutes of process, no real waiting
    await line.tick()
    by_var = {v: [p.sample for p in got if p.variable == v] for v in ("a", "b", "c")}
    assert len(by_var["a"]) == 1201 and len(by_var["c"]) == 1201  # 2 Hz, t = 0 .. 600
    assert len(by_var["b"]) == 6001  # its own 10 Hz
    stamps = [clock.timestamp(s.t) for s in by_var["a"][:3]]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert stamps == [start, start + timedelta(seconds=0.5), start + timedelta(seconds=1)]


async def test_same_seed_same_line_values():
    one, clock1 = make_line()
    two, clock2 = make_line()
    clock1.advance(30)
    clock2.advance(30)
    a = [p.sample.value for p in await one.tick() if isinstance(p, Published)]
    b = [p.sample.value for p in await two.tick() if isinstance(p, Published)]
    assert a == b and len(a) > 100


async def test_disturbance_scheduled_in_the_file_applies_to_its_variable_only():
    line, clock = make_line(disturbances=[
        {"kind": "shift", "machine": "M1", "variable": "a", "magnitude": 50, "after_seconds": 10,
         "for_seconds": 5},
    ])
    clock.advance(30)
    got = [e for e in await line.tick() if isinstance(e, Published)]
    a = [(p.sample.t, p.sample.value) for p in got if p.variable == "a"]
    shifted = [t for t, v in a if v > 35]
    assert shifted == [10.0 + 0.5 * i for i in range(10)]
    assert all(abs(p.sample.value) < 6 for p in got if p.variable == "c")


async def test_device_disconnect_on_a_schedule_then_reconnect():
    line, clock = make_line(disturbances=[{"kind": "disconnect", "after_seconds": 10,
                                           "for_seconds": 5}])
    events: list[tuple[float, str | None, bool]] = []

    async def record(machine: str | None, connected: bool) -> None:
        events.append((clock.now(), machine, connected))

    line.connection_listeners.append(record)
    for _ in range(40):
        clock.advance(0.5)
        await line.tick()
    assert events == [(10.0, None, False), (15.0, None, True)]
    assert line.state()["connected"] is True


async def test_one_machine_disconnects_while_the_other_answers():
    line, clock = make_line(disturbances=[{"kind": "disconnect", "machine": "M2",
                                           "after_seconds": 2, "for_seconds": 3}])
    events: list[tuple[float, str | None, bool]] = []

    async def record(machine: str | None, connected: bool) -> None:
        events.append((clock.now(), machine, connected))

    line.connection_listeners.append(record)
    clock.advance(3)
    await line.tick()
    state = line.state()
    assert state["connected"] is True
    assert [m["connected"] for m in state["machines"]] == [True, False]
    for _ in range(10):
        clock.advance(0.5)
        await line.tick()
    # First evaluated at t=3 (the first tick), so it lasts until t=6.
    assert events == [(3.0, "M2", False), (6.0, "M2", True)]


async def test_clearing_disturbances_reconnects_the_device():
    line, _ = make_line()
    line.add_disturbance(DisturbanceSpec(kind="disconnect"), origin="control")
    await line.tick()
    assert line.connected is False
    assert await line.clear_disturbances() == 1
    assert line.connected is True


def test_unknown_targets_are_refused_with_the_known_names():
    line, _ = make_line()
    expected = r"unknown variable 'z' on machine 'M1'; it has \['a', 'b'\]"
    with pytest.raises(ConfigError, match=expected):
        line.add_disturbance(DisturbanceSpec(kind="shift", machine="M1", variable="z"), "control")
    with pytest.raises(ConfigError, match="several machines: give 'machine'"):
        line.add_disturbance(DisturbanceSpec(kind="shift", variable="a"), "control")


def test_state_reports_unit_ids_and_disturbances():
    line, _ = make_line()
    line.add_disturbance(DisturbanceSpec(kind="trend", machine="M2", variable="c"), "control")
    state = line.state()
    assert [(m["name"], m["unit_id"]) for m in state["machines"]] == [("M1", 1), ("M2", 7)]
    (d,) = state["disturbances"]
    assert (d["kind"], d["machine"], d["variable"], d["state"]) == ("trend", "M2", "c", "pending")


async def test_rule_showcase_scenario_trips_each_rule_in_its_window():
    import numpy as np

    from simulators.config import load_line_config, load_scenario
    from spc_core.charts import imr_limits
    from spc_core.rules import evaluate_rules
    from tests.fixtures.simulators import REPO

    examples = REPO / "simulators" / "examples"
    config = load_line_config(examples / "machining_line.yaml")
    scenario = load_scenario(examples / "scenarios" / "rule_showcase.yaml", config)
    config = config.model_copy(update={"disturbances": scenario})
    clock = VirtualClock(speed=0)
    line = LineSimulation(config, seed=2026, clock=clock)
    clock.advance(359.5)  # 720 samples at 2 Hz
    bore = np.array([e.sample.value for e in await line.tick()
                     if isinstance(e, Published) and e.variable == "bore_diameter"])
    assert len(bore) == 720
    limits = imr_limits(bore[:120])
    fired = evaluate_rules(bore, limits.center, limits.sigma, rules="nelson")
    windows = {"nelson2": (120, 180), "nelson3": (240, 260), "nelson4": (360, 420),
               "nelson7": (480, 540), "nelson8": (600, 660)}
    for rule, (start, end) in windows.items():
        hits = fired[rule]
        assert np.any((hits >= start) & (hits < end + 5)), f"{rule} not in {start}..{end}"


async def test_device_disconnect_counted_in_samples_of_its_machine():
    # M2's variable runs at 2 Hz: after 4 samples (t=2) for 2 samples (1 s).
    line, clock = make_line(disturbances=[{"kind": "disconnect", "machine": "M2",
                                           "after_samples": 4, "for_samples": 2}])
    seen = []
    for _ in range(12):
        await line.tick()
        seen.append((clock.now(), line.machines_connected["M2"]))
        clock.advance(0.25)
    offline = [t for t, connected in seen if not connected]
    # Off once 4 samples exist (t=0..1.5), and while samples 4 and 5 (t=2.0, 2.5) are made.
    assert offline == [1.75, 2.0, 2.25, 2.5]
