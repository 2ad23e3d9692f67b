"""Modbus triggered sampling (issue 5) over real Modbus TCP against the simulator in part mode:
when the part counter (or the part-complete bit) changes, the group is read once and its samples
carry the part id. The simulator updates a part's registers and its counter together, so a
sample's own sample counter (register 900) tells which part its values belong to."""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path
from typing import Any

import pytest

from edge_agent.config import ConfigError, parse_config
from edge_agent.sources.base import Sample
from edge_agent.sources.modbus import ModbusConfig, ModbusSource
from tests.fixtures.simulators import RunningSimulator

INSPECTION_LINE = Path(__file__).resolve().parents[2] / "simulators/examples/inspection_line.yaml"
PART_COUNTER, PART_NUMBER, PART_BIT = 1000, 1002, 100  # simulators/README.md, register map


def config(sim: RunningSimulator, **extra: Any) -> ModbusConfig:
    return ModbusConfig.model_validate({
        "kind": "modbus", "name": "lathe1", "host": "127.0.0.1", "port": sim.modbus_port,
        "unit_id": 1, "timeout_s": 2, **extra})


def part_count(sim: RunningSimulator) -> int:
    return int(sim.state()["machines"][0]["part"]["count"])


async def parts_made(sim: RunningSimulator, n: int) -> None:
    """Until the simulator has completed n more parts (a wait on the device, not on a clock)."""
    start = part_count(sim)
    for _ in range(1200):
        if part_count(sim) >= start + n:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the simulator did not complete {n} parts")


async def read_until(source: ModbusSource, enough: Any, polls: int = 2000) -> list[Sample]:
    got: list[Sample] = []
    for _ in range(polls):
        got += await source.read()
        if enough(got):
            return got
        await asyncio.sleep(0.02)
    raise AssertionError(f"not enough samples after {polls} polls: {got}")


def as_float32(value: float) -> float:
    return float(struct.unpack(">f", struct.pack(">f", value))[0])


@pytest.fixture
def part_sim(simulator_factory: Any) -> RunningSimulator:
    return simulator_factory(config=INSPECTION_LINE, rate=4.0)


async def test_counter_trigger_reads_each_part_once_with_its_part_id(
        part_sim: RunningSimulator) -> None:
    source = ModbusSource(config(part_sim, triggers=[{
        "address": PART_COUNTER, "type": "uint32",
        "part_id": {"address": PART_NUMBER, "type": "uint32", "prefix": "SH-"},
        "tags": [{"characteristic": "shaft_od", "address": 0, "unit": "mm"},
                 {"characteristic": "shaft_length", "address": 2, "unit": "mm"},
                 {"characteristic": "runout", "address": 4, "unit": "um"},
                 {"characteristic": "od_sample_no", "address": 900, "type": "uint32"}]}]))
    await source.connect()
    try:
        assert await source.read() == []  # the counter's first value is a baseline, no part
        got = await read_until(source, lambda g: len(g) >= 4 * 5)
    finally:
        await source.close()
    parts: dict[str, dict[str, Sample]] = {}
    for s in got:
        assert s.part_id is not None and s.quality == "good"
        assert s.characteristic not in parts.setdefault(s.part_id, {}), "a part read twice"
        parts[s.part_id][s.characteristic] = s
    numbers = [int(p.removeprefix("SH-")) for p in parts]
    assert numbers == sorted(numbers) and len(numbers) >= 5
    history = {v: {h["index"]: h["value"] for h in part_sim.history(v, machine="Lathe1")}
               for v in ("shaft_od", "shaft_length", "runout")}
    for part_id, group in parts.items():
        n = int(part_id.removeprefix("SH-"))
        assert set(group) == {"shaft_od", "shaft_length", "runout", "od_sample_no"}
        assert group["od_sample_no"].value == n  # the values are this part's ...
        for variable, by_index in history.items():  # ... exactly as the simulator made them
            assert group[variable].value == as_float32(by_index[n - 1]), (part_id, variable)
        assert len({s.ts for s in group.values()}) == 1
    # every part from the first to the last sampled was either sampled or counted as missed
    assert numbers[-1] - numbers[0] + 1 - len(numbers) <= source.missed_triggers


async def test_bit_and_counter_triggers_beside_polled_tags(part_sim: RunningSimulator) -> None:
    """A toggling part-complete bit with a part id register, and a counter whose own value is
    the part id (the default), in one source that also polls a tag every interval."""
    source = ModbusSource(config(part_sim, tags=[
        {"characteristic": "runout_polled", "address": 4}], triggers=[
        {"address": PART_BIT, "function": "discrete_input", "type": "bool",
         "part_id": {"address": PART_NUMBER, "type": "uint32", "prefix": "SH-"},
         "tags": [{"characteristic": "od_on_bit", "address": 0}]},
        {"address": PART_COUNTER, "type": "uint32",
         "tags": [{"characteristic": "od_on_counter", "address": 0},
                  {"characteristic": "count_on_counter", "address": 900, "type": "uint32"}]}]))
    await source.connect()
    try:
        got = await read_until(source, lambda g: sum(s.characteristic == "od_on_bit"
                                                     for s in g) >= 3)
    finally:
        await source.close()
    polled = [s for s in got if s.characteristic == "runout_polled"]
    assert polled and all(s.part_id is None for s in polled)
    on_bit = [s for s in got if s.characteristic == "od_on_bit"]
    on_counter = {s.part_id: s for s in got if s.characteristic == "od_on_counter"}
    counts = {s.part_id: s.value for s in got if s.characteristic == "count_on_counter"}
    assert all(s.part_id and s.part_id.startswith("SH-") for s in on_bit)
    assert all(counts[p] == int(p) for p in on_counter)  # default part id: the counter value
    # the same part seen through both triggers carries the same measurement
    both = [s for s in on_bit if s.part_id and s.part_id.removeprefix("SH-") in on_counter]
    assert both and all(on_counter[s.part_id.removeprefix("SH-")].value == s.value
                        for s in both if s.part_id)


async def test_parts_made_between_checks_are_counted_as_missed(
        part_sim: RunningSimulator) -> None:
    source = ModbusSource(config(part_sim, triggers=[{
        "address": PART_COUNTER, "type": "uint32",
        "tags": [{"characteristic": "n", "address": 900, "type": "uint32"}]}]))
    await source.connect()
    try:
        assert await source.read() == []
        await parts_made(part_sim, 4)  # nobody looks while 4 parts are made
        got = await source.read()
    finally:
        await source.close()
    # One group, of the newest part at the time of the check; the parts before it are counted.
    assert len(got) == 1 and got[0].part_id == str(int(got[0].value or 0))
    assert source.missed_triggers >= 3


def test_trigger_config_is_validated_like_a_tag(tmp_path: Path) -> None:
    base = {"agent": {"name": "a"}, "server": {"url": "http://127.0.0.1:1"},
            "buffer": {"path": str(tmp_path / "b.sqlite")}}
    source = {"kind": "modbus", "name": "m", "host": "h", "triggers": [
        {"address": 100, "function": "discrete_input", "type": "uint32",
         "tags": [{"characteristic": "x", "address": 0}]}]}
    with pytest.raises(ConfigError) as info:
        parse_config({**base, "sources": [source]}, "agent.yaml")
    assert "sources[0].triggers[0]: function 2 reads bits: set type: bool" in str(info.value)
    with pytest.raises(ConfigError, match=r"sources\[0\]: a modbus source needs tags, triggers"):
        parse_config({**base, "sources": [{"kind": "modbus", "name": "m", "host": "h"}]},
                     "agent.yaml")
    ok = parse_config({**base, "sources": [{**source, "triggers": [{
        "address": 1000, "type": "uint32", "part_id": {"address": 1002, "type": "uint32"},
        "tags": [{"characteristic": "x", "address": 0}]}]}]}, "agent.yaml")
    assert ok.sources[0].triggers[0].part_id.address == 1002


class PartDevice:
    """A stand-in client for a device that completes the next part while the agent reads the
    previous part's group: registers 0-1 part counter, 10 the measurement (= part number)."""

    connected = True

    def __init__(self, advance_on_group_reads: int) -> None:
        self.part = 1
        self.advance = advance_on_group_reads
        self.log: list[int] = []

    async def read_holding_registers(self, address: int, count: int, device_id: int) -> Any:
        self.log.append(address)
        if address == 10 and self.advance > 0:  # the next part completes after this read
            self.advance -= 1
            regs = [self.part]
            self.part += 1
            return _Response(regs)
        regs = [self.part >> 16, self.part & 0xFFFF] if address == 0 else [self.part]
        return _Response(regs)


class _Response:
    def __init__(self, registers: list[int]) -> None:
        self.registers = registers

    def isError(self) -> bool:  # pymodbus' name
        return False


@pytest.mark.parametrize(("advances", "sampled", "missed"), [(0, ["2"], 0), (1, ["3"], 1),
                                                             (3, [], 4)])
async def test_a_group_read_torn_by_the_next_part_is_read_again(
        advances: int, sampled: list[str], missed: int) -> None:
    source = ModbusSource(ModbusConfig.model_validate({
        "kind": "modbus", "name": "m", "host": "h", "triggers": [{
            "address": 0, "type": "uint32",
            "tags": [{"characteristic": "x", "address": 10, "type": "uint16"}]}]}))
    device = PartDevice(advance_on_group_reads=0)
    source._client = device  # type: ignore[assignment]
    assert await source.read() == []  # baseline: part 1
    device.part, device.advance = 2, advances
    got = await source.read()
    # Only a group whose trigger did not move while it was read is kept, with its own part id;
    # each torn read's part is counted as missed (with 3 torn reads the agent gives up, and the
    # part current then is missed too: parts 2-5).
    assert [s.part_id for s in got] == sampled
    assert all(s.value == float(s.part_id or 0) for s in got)
    assert source.missed_triggers == missed
