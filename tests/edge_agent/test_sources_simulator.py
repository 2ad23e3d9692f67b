"""OPC UA and Modbus sources against the real simulator process."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from edge_agent.sources.base import Sample, SourceError
from edge_agent.sources.modbus import ModbusConfig, ModbusSource
from edge_agent.sources.opcua import OpcuaConfig, OpcuaSource
from tests.fixtures.net import free_port
from tests.fixtures.simulators import RunningSimulator

VARIABLES = {"bore_diameter": (25.0, 0.005), "surface_roughness": (0.8, 0.05),
             "spindle_temp": (45.0, 0.5)}


def opcua_config(sim: RunningSimulator, **extra: Any) -> OpcuaConfig:
    tags = [{"node_id": f"ns=2;s=Line1.CNC1.{v}", "characteristic": v} for v in VARIABLES]
    return OpcuaConfig.model_validate({"kind": "opcua", "name": "cnc1-opcua",
                                       "security": {"policy": "None", "allow_insecure": True},
                                       "endpoint": sim.opcua_endpoint, "interval_s": 0.1,
                                       "tags": tags, **extra})


def modbus_config(port: int, tags: list[dict[str, Any]], **extra: Any) -> ModbusConfig:
    return ModbusConfig.model_validate({"kind": "modbus", "name": "cnc1-modbus",
                                        "host": "127.0.0.1", "port": port, "timeout_s": 1,
                                        "tags": tags, **extra})


def plausible(sample: Sample) -> bool:
    mean, sigma = VARIABLES[sample.characteristic.split(".")[0]]
    return sample.quality == "good" and abs((sample.value or 0) - mean) < 8 * sigma


async def test_opcua_polling_reads_every_node(module_simulator: RunningSimulator) -> None:
    source = OpcuaSource(opcua_config(module_simulator))
    await source.connect()
    try:
        samples = await source.read()
    finally:
        await source.close()
    assert sorted(s.characteristic for s in samples) == sorted(VARIABLES)
    assert all(plausible(s) for s in samples), samples
    assert all(s.ts.tzinfo is not None for s in samples)


async def test_opcua_polling_skips_values_not_sampled_again(
        module_simulator: RunningSimulator) -> None:
    # Polled 5x faster than the 10 Hz process, each measurement is still one sample.
    source = OpcuaSource(opcua_config(module_simulator))
    await source.connect()
    seen: list[Sample] = []
    try:
        for _ in range(25):
            seen += [s for s in await source.read() if s.characteristic == "bore_diameter"]
            await asyncio.sleep(0.02)
    finally:
        await source.close()
    stamps = [s.ts for s in seen]
    assert len(stamps) == len(set(stamps)) and 3 <= len(stamps) <= 15


async def test_opcua_namespace_uri_node_ids(module_simulator: RunningSimulator) -> None:
    cfg = opcua_config(module_simulator, tags=[
        {"node_id": "nsu=urn:shopfloor-spc:simulator;s=Line1.CNC1.bore_diameter",
         "characteristic": "bore_diameter"}])
    source = OpcuaSource(cfg)
    await source.connect()
    try:
        samples = await source.read()
    finally:
        await source.close()
    assert len(samples) == 1 and plausible(samples[0])


async def test_opcua_unknown_node_is_bad_not_an_error(module_simulator: RunningSimulator) -> None:
    cfg = opcua_config(module_simulator, tags=[
        {"node_id": "ns=2;s=Line1.CNC1.bore_diameter", "characteristic": "bore_diameter"},
        {"node_id": "ns=2;s=Line1.CNC1.no_such_thing", "characteristic": "ghost"}])
    source = OpcuaSource(cfg)
    await source.connect()
    try:
        samples = {s.characteristic: s for s in await source.read()}
    finally:
        await source.close()
    assert plausible(samples["bore_diameter"])
    assert samples["ghost"].quality == "bad" and samples["ghost"].value is None


async def test_opcua_bad_status_never_carries_the_last_good_value(
        simulator: RunningSimulator) -> None:
    source = OpcuaSource(opcua_config(simulator))
    await source.connect()
    try:
        before = {s.characteristic: s for s in await source.read()}
        assert plausible(before["bore_diameter"])
        simulator.inject("bore_diameter", "dropout")
        for _ in range(50):
            await asyncio.sleep(0.1)
            now = {s.characteristic: s for s in await source.read()}
            if "bore_diameter" in now and now["bore_diameter"].quality == "bad":
                break
        else:
            pytest.fail("no bad sample after a sensor dropout")
        assert now["bore_diameter"].value is None
    finally:
        await source.close()


async def test_opcua_subscription_values_exact_and_bad_never_a_value(
        simulator: RunningSimulator) -> None:
    """Subscribed values arrive through the fast decoder of publish responses (opcua_fast)
    exactly as the simulator produced them, and a Bad status as bad with no value."""
    source = OpcuaSource(opcua_config(simulator, mode="subscribe", sampling_interval_ms=50))
    await source.connect()
    got: list[Sample] = []
    try:
        for _ in range(300):
            got += await source.read()
            if sum(s.characteristic == "bore_diameter" for s in got) >= 10:
                break
        simulator.inject("bore_diameter", "dropout")
        for _ in range(300):
            batch = await source.read()
            got += batch
            if any(s.characteristic == "bore_diameter" and s.quality == "bad" for s in batch):
                break
        else:
            pytest.fail("no bad sample after a sensor dropout")
    finally:
        await source.close()
    assert source.fast_messages > 0
    produced = {(h["value"]) for h in simulator.history("bore_diameter")}
    bore = [s for s in got if s.characteristic == "bore_diameter"]
    good = [s for s in bore if s.quality == "good"]
    assert len(good) >= 10 and all(s.value in produced for s in good)  # exact doubles
    assert all(s.value is None for s in bore if s.quality == "bad")
    assert {s.characteristic for s in got} == set(VARIABLES)


async def wait_for_samples_of(simulator: RunningSimulator, variable: str, count: int) -> None:
    """Until the simulator has produced `count` more samples of `variable` (no timing assumed)."""
    start = simulator.value(variable)["index"]
    for _ in range(600):
        if simulator.value(variable)["index"] >= start + count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the simulator produced no {count} samples of {variable}")


async def test_opcua_data_change_trigger_and_a_stuck_sensor(simulator: RunningSimulator) -> None:
    """A stuck gauge repeats its value under new source timestamps: with status_value (the OPC
    UA default when a client sends no filter) the server reports nothing, so the stuck sensor
    looks like an idle one; with status_value_timestamp (the agent's default) every measurement
    arrives, and SPC sees the repeated value."""
    simulator.inject("bore_diameter", "stuck")
    await wait_for_samples_of(simulator, "bore_diameter", 2)  # stuck from here on
    bore = [{"node_id": "ns=2;s=Line1.CNC1.bore_diameter", "characteristic": "bore_diameter"}]
    triggers = ("status", "status_value", "status_value_timestamp")
    sources = {t: OpcuaSource(opcua_config(simulator, mode="subscribe", tags=bore,
                                           sampling_interval_ms=50, data_change_trigger=t))
               for t in triggers}
    assert OpcuaSource(opcua_config(simulator, mode="subscribe")).config.data_change_trigger \
        == "status_value_timestamp"
    got: dict[str, list[Sample]] = {t: [] for t in triggers}
    for source in sources.values():
        await source.connect()
    try:
        # read all three side by side until the timestamp trigger has 8 measurements
        for _ in range(300):
            batches = await asyncio.gather(*(s.read() for s in sources.values()))
            for t, batch in zip(triggers, batches, strict=True):
                got[t] += batch
            if len(got["status_value_timestamp"]) >= 8:
                break
    finally:
        for source in sources.values():
            await source.close()
    every = got["status_value_timestamp"]
    assert len(every) >= 8
    assert len({s.value for s in every}) == 1  # the repeated value ...
    assert len({s.ts for s in every}) == len(every)  # ... once per measurement
    assert all(s.quality == "good" for s in every)
    # The other two report (at most) the value current when the item was created, then nothing.
    assert len(got["status_value"]) <= 1 and len(got["status"]) <= 1
    assert all(s.value == every[0].value for s in got["status_value"] + got["status"])


async def test_opcua_status_value_trigger_reports_changing_values(
        module_simulator: RunningSimulator) -> None:
    source = OpcuaSource(opcua_config(module_simulator, mode="subscribe", sampling_interval_ms=50,
                                      data_change_trigger="status_value"))
    await source.connect()
    got: list[Sample] = []
    try:
        for _ in range(300):
            got += [s for s in await source.read() if s.characteristic == "spindle_temp"]
            if len(got) >= 5:
                break
    finally:
        await source.close()
    assert len(got) >= 5 and len({s.value for s in got}) == len(got)


def test_opcua_deadband_needs_a_value_trigger(module_simulator: RunningSimulator) -> None:
    with pytest.raises(ValueError, match="data_change_trigger status reports quality changes"):
        opcua_config(module_simulator, mode="subscribe", data_change_trigger="status", tags=[
            {"node_id": "ns=2;s=Line1.CNC1.bore_diameter", "characteristic": "b",
             "deadband": 0.1}])


async def test_opcua_connect_to_nothing_raises_source_error() -> None:
    cfg = OpcuaConfig.model_validate({
        "kind": "opcua", "name": "nowhere", "timeout_s": 1,
        "security": {"policy": "None", "allow_insecure": True},
        "endpoint": f"opc.tcp://127.0.0.1:{free_port()}/x/",
        "tags": [{"node_id": "ns=2;s=a", "characteristic": "a"}]})
    source = OpcuaSource(cfg)
    with pytest.raises(SourceError, match="cannot connect"):
        await source.connect()
    await source.close()


async def test_modbus_reads_the_simulator_in_every_encoding_it_offers(
        module_simulator: RunningSimulator) -> None:
    tags: list[dict[str, Any]] = []
    for base, order in ((0, "ABCD"), (100, "CDAB"), (200, "BADC"), (300, "DCBA")):
        tags.append({"characteristic": f"bore_diameter.f32.{order}", "address": base,
                     "byte_order": order})
    for base, order in ((400, "ABCD"), (500, "CDAB"), (600, "BADC"), (700, "DCBA")):
        tags.append({"characteristic": f"bore_diameter.f64.{order}", "address": base,
                     "type": "float64", "byte_order": order})
    tags.append({"characteristic": "bore_diameter.int16", "address": 800, "type": "int16",
                 "scale": 0.001, "bad_raw": -32768})
    tags.append({"characteristic": "bore_diameter.input", "address": 0, "function": "input"})
    source = ModbusSource(modbus_config(module_simulator.modbus_port, tags))
    await source.connect()
    try:
        samples = await source.read()
    finally:
        await source.close()
    assert len(samples) == len(tags)
    assert all(plausible(s) for s in samples), samples
    values = [s.value or 0 for s in samples]
    assert max(values) - min(values) < 8 * 0.005  # the same process variable, read 10 ways


async def test_modbus_counters_and_bits(module_simulator: RunningSimulator) -> None:
    tags = [{"characteristic": "samples", "address": 900, "type": "uint32"},
            {"characteristic": "good", "address": 0, "function": 2, "type": "bool"},
            {"characteristic": "fault", "address": 0, "function": 1, "type": "bool"}]
    source = ModbusSource(modbus_config(module_simulator.modbus_port, tags))
    await source.connect()
    try:
        first = {s.characteristic: s.value for s in await source.read()}
        await asyncio.sleep(0.5)
        second = {s.characteristic: s.value for s in await source.read()}
    finally:
        await source.close()
    assert (second["samples"] or 0) > (first["samples"] or 0) > 0
    assert first["good"] == 1.0 and first["fault"] == 0.0


async def test_modbus_nan_is_bad(simulator: RunningSimulator) -> None:
    tags = [{"characteristic": "bore_diameter", "address": 0},
            {"characteristic": "bore_diameter.int16", "address": 800, "type": "int16",
             "scale": 0.001, "bad_raw": -32768}]
    source = ModbusSource(modbus_config(simulator.modbus_port, tags))
    await source.connect()
    try:
        simulator.inject("bore_diameter", "dropout")
        for _ in range(50):
            await asyncio.sleep(0.1)
            now = await source.read()
            if all(s.quality == "bad" for s in now):
                break
        else:
            pytest.fail(f"no bad samples after a sensor dropout: {now}")
        assert all(s.value is None for s in now)
    finally:
        await source.close()


async def test_modbus_illegal_address_is_bad_and_the_link_stays_up(
        module_simulator: RunningSimulator) -> None:
    tags = [{"characteristic": "bore_diameter", "address": 0},
            {"characteristic": "nothing_here", "address": 60000}]
    source = ModbusSource(modbus_config(module_simulator.modbus_port, tags))
    await source.connect()
    try:
        for _ in range(2):
            samples = {s.characteristic: s for s in await source.read()}
            assert plausible(samples["bore_diameter"])
            assert samples["nothing_here"].quality == "bad"
    finally:
        await source.close()


async def test_modbus_connect_refused_raises_source_error() -> None:
    source = ModbusSource(modbus_config(free_port(), [{"characteristic": "x", "address": 0}]))
    with pytest.raises(SourceError, match=r"cannot connect to 127\.0\.0\.1"):
        await source.connect()
    await source.close()
