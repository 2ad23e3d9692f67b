"""Attribute streams (counts per lot) and part mode (one measurement set per produced part)."""

from __future__ import annotations

import asyncio
import struct
import time

import numpy as np
import pytest
from asyncua import Client, ua
from pymodbus.client import AsyncModbusTcpClient

from simulators import modbus_map as mm
from simulators.clock import VirtualClock
from simulators.config import (
    AttributeStreamConfig,
    ConfigError,
    DisturbanceSpec,
    parse_line_config,
)
from simulators.disturbances import ActiveDisturbance
from simulators.line import LineSimulation, Published, PublishedPart
from simulators.process import AttributeProcess
from spc_core.rules import evaluate_rules
from tests.fixtures.simulators import MACHINING_LINE, REPO, RunningSimulator

INSPECTION_LINE = REPO / "simulators" / "examples" / "inspection_line.yaml"


def counts(stream: AttributeStreamConfig, n: int, seed: int = 0, **shift) -> np.ndarray:
    process = AttributeProcess("M", stream, seed)
    if shift:
        spec = DisturbanceSpec(kind="shift", variable=stream.name, **shift)
        process.add(ActiveDisturbance(spec, "schedule"))
    return np.array([process.next(float(i)).count for i in range(n)])


def test_defectives_per_lot_are_binomial():
    stream = AttributeStreamConfig(name="d", kind="defectives", lot_size=200, p=0.05)
    x = counts(stream, 5000, seed=3)
    # np = 10, np(1-p) = 9.5; standard errors 0.044 and ~0.19.
    assert x.mean() == pytest.approx(10.0, abs=0.2)
    assert x.var(ddof=1) == pytest.approx(9.5, abs=0.8)


def test_defects_per_unit_are_poisson():
    stream = AttributeStreamConfig(name="c", kind="defects", units_inspected=4,
                                   defects_per_unit=1.5)
    x = counts(stream, 5000, seed=4)
    assert x.mean() == pytest.approx(6.0, abs=0.15)
    assert x.var(ddof=1) == pytest.approx(6.0, abs=0.5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_shift_on_a_count_is_caught_by_the_np_chart(seed):
    stream = AttributeStreamConfig(name="d", kind="defectives", lot_size=100, p=0.04)
    x = counts(stream, 150, seed=seed, magnitude=3.0, after_samples=100)
    center, sigma = 4.0, (100 * 0.04 * 0.96) ** 0.5
    assert x[100:].mean() - x[:100].mean() == pytest.approx(3 * sigma, abs=1.0)
    fired = evaluate_rules(x, center, sigma, rules="we1,we2")
    in_window = sum(int(np.count_nonzero(idx >= 100)) for idx in fired.values())
    assert in_window >= 3


def test_only_a_shift_applies_to_an_attribute_stream():
    config = parse_line_config({
        "line": "L", "machines": [{"name": "M", "variables": [
            {"name": "x", "mean": 0, "sigma": 1}],
            "attributes": [{"name": "d", "kind": "defectives", "lot_size": 10, "p": 0.1}]}],
    })
    line = LineSimulation(config, 0, VirtualClock(speed=0))
    with pytest.raises(ConfigError, match="supports only \\['shift'\\] disturbances, not 'trend'"):
        line.add_disturbance(DisturbanceSpec(kind="trend", variable="d"), "control")
    line.add_disturbance(DisturbanceSpec(kind="shift", variable="d"), "control")


def test_attribute_stream_needs_its_fields():
    with pytest.raises(ConfigError, match=r"machines\.0\.attributes\.0.*needs lot_size and p"):
        parse_line_config({"line": "L", "machines": [{
            "name": "M", "variables": [{"name": "x", "mean": 0, "sigma": 1}],
            "attributes": [{"name": "d", "kind": "defectives", "lot_size": 10}]}]})


async def test_part_mode_publishes_each_part_after_its_measurements():
    config = parse_line_config({
        "line": "L", "machines": [{
            "name": "Lathe", "part_mode": {"cycle_seconds": 2.0, "part_id_prefix": "P-"},
            "variables": [{"name": "od", "mean": 18, "sigma": 0.01},
                          {"name": "len", "mean": 120, "sigma": 0.02, "rate_hz": 50}],
        }],
    })
    clock = VirtualClock(speed=0)
    line = LineSimulation(config, 0, clock)
    clock.advance(10.0)
    events = await line.tick()
    assert [type(e).__name__ for e in events[:6]] == [
        "Published", "Published", "PublishedPart"] * 2
    parts = [e for e in events if isinstance(e, PublishedPart)]
    assert [(p.count, p.part_id, p.t) for p in parts] == [
        (k + 1, f"P-{k + 1}", 2.0 * k) for k in range(6)]
    # Every variable is measured once per part (the variable's own rate does not apply).
    samples = [e for e in events if isinstance(e, Published)]
    assert [s.part_id for s in samples if s.variable == "len"] == [p.part_id for p in parts]
    assert line.state()["machines"][0]["part"] == {"count": 6, "id": "P-6"}


async def test_attribute_stream_over_opcua_and_modbus(shared_simulator: RunningSimulator):
    sim = shared_simulator
    deadline = time.monotonic() + 30
    while (lots := sim.state()["machines"][0]["attributes"]["defectives"])["lot"] < 1:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    async with Client(sim.opcua_endpoint, timeout=10) as client:
        count_node = client.get_node("ns=2;s=Line1.CNC1.defectives")
        nodes = [count_node, client.get_node("ns=2;s=Line1.CNC1.defectives.sample_size"),
                 client.get_node("ns=2;s=Line1.CNC1.defectives.lot")]
        count, size, lot = await client.read_values(nodes)
        browse = {(await c.read_browse_name()).Name for c in await count_node.get_children()}
    assert browse == {"sample_size", "lot"}
    client = AsyncModbusTcpClient("127.0.0.1", port=sim.modbus_port)
    await client.connect()
    try:
        regs = (await client.read_holding_registers(mm.ATTRIBUTE_BASE, count=6,
                                                    device_id=1)).registers
    finally:
        client.close()
    m_lot, m_count, m_size = (struct.unpack(">I", struct.pack(">HH", *regs[i : i + 2]))[0]
                              for i in (0, 2, 4))
    state = sim.state()["machines"][0]["attributes"]["defectives"]
    assert size == m_size == state["size"] == 50
    # One lot per 10 s at the fixture's 10 Hz: all three reads saw the same lot.
    assert lot == m_lot == state["lot"] and count == m_count == state["count"]
    assert lots["kind"] == "defectives" and 0 <= count <= 50


async def test_part_trigger_and_part_measurements_over_both_protocols(simulator_factory):
    sim: RunningSimulator = simulator_factory(config=INSPECTION_LINE, rate=4.0)
    seen: list[ua.DataValue] = []

    class Trigger:
        def datachange_notification(self, node, val, data) -> None:
            seen.append(data.monitored_item.Value)

    names = ["part_id", "part_count", "shaft_od", "shaft_length", "runout"]
    checked = 0
    async with Client(sim.opcua_endpoint, timeout=10) as client:
        subscription = await client.create_subscription(10, Trigger())
        await subscription.subscribe_data_change(client.get_node("ns=2;s=Line3.Lathe1.part_count"))
        nodes = [client.get_node(f"ns=2;s=Line3.Lathe1.{n}") for n in names]
        deadline = time.monotonic() + 20
        while checked < 3:
            assert time.monotonic() < deadline, "no part triggers"
            if not seen:
                await asyncio.sleep(0.02)
                continue
            seen.clear()
            # Triggered read: the part's id and measurements, in one request.
            dvs = await client.read_attributes(nodes, ua.AttributeIds.Value)
            part_id, count = dvs[0].Value.Value, dvs[1].Value.Value
            assert part_id == f"SH-{count}"
            stamps = {dv.SourceTimestamp for dv in dvs}
            assert len(stamps) == 1, "the measurements are not those of the part"
            checked += 1
        await subscription.delete()

    client = AsyncModbusTcpClient("127.0.0.1", port=sim.modbus_port)
    await client.connect()
    try:
        # Sample counters (900..905) and part registers (1000..1003) in one request.
        regs = (await client.read_holding_registers(900, count=104, device_id=1)).registers

        def u32(offset: int) -> int:
            return struct.unpack(">I", struct.pack(">HH", *regs[offset : offset + 2]))[0]

        part_count, part_number = u32(100), u32(102)
        assert part_count >= 3 and part_number == part_count
        assert [u32(0), u32(2), u32(4)] == [part_count] * 3
        # The trigger bit toggles once per part: set after odd parts, clear after even ones.
        levels: dict[int, bool] = {}
        deadline = time.monotonic() + 20
        while len(levels) < 2:
            assert time.monotonic() < deadline, f"trigger levels seen: {levels}"
            before = await client.read_holding_registers(mm.PART_COUNTER, count=2, device_id=1)
            bit = await client.read_discrete_inputs(mm.BIT_PART_TRIGGER, count=1, device_id=1)
            after = await client.read_holding_registers(mm.PART_COUNTER, count=2, device_id=1)
            if before.registers == after.registers:  # no part completed between the reads
                count = before.registers[0] << 16 | before.registers[1]
                assert bit.bits[0] == bool(count % 2), count
                levels[count % 2] = bit.bits[0]
            await asyncio.sleep(0.05)
    finally:
        client.close()


def test_machining_line_example_has_defectives_per_lot():
    from simulators.config import load_line_config

    cnc = load_line_config(MACHINING_LINE).machine("CNC1")
    assert [(a.name, a.kind.value, a.lot_size) for a in cnc.attributes] == [
        ("defectives", "defectives", 50)]
