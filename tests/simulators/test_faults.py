"""Equipment failures as a client sees them: sensor dropout, stuck value, device disconnect."""

from __future__ import annotations

import asyncio
import math
import socket
import struct
import time
from datetime import UTC, datetime, timedelta

import pytest
from asyncua import Client, ua
from pymodbus.client import AsyncModbusTcpClient

from tests.fixtures.simulators import RunningSimulator, port_answers


def until(probe, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := probe():
            return result
        time.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout} s")


async def modbus_status(port: int) -> tuple[list[float], list[bool], list[bool]]:
    """(float32 ABCD values, discrete inputs 0-2 "good", coils 0-2 "fault") of unit 1."""
    client = AsyncModbusTcpClient("127.0.0.1", port=port)
    await client.connect()
    try:
        regs = (await client.read_holding_registers(0, count=6, device_id=1)).registers
        good = (await client.read_discrete_inputs(0, count=3, device_id=1)).bits[:3]
        fault = (await client.read_coils(0, count=3, device_id=1)).bits[:3]
    finally:
        client.close()
    values = [struct.unpack(">f", struct.pack(">HH", *regs[i : i + 2]))[0] for i in (0, 2, 4)]
    return values, good, fault


async def opcua_values(endpoint: str) -> list[ua.DataValue]:
    async with Client(endpoint, timeout=10) as client:
        nodes = [client.get_node(f"ns=2;s=Line1.CNC1.{n}")
                 for n in ("bore_diameter", "surface_roughness", "spindle_temp")]
        return await client.read_attributes(nodes, ua.AttributeIds.Value)


def active(sim: RunningSimulator) -> bool:
    return all(d["state"] == "active" and d["samples_affected"] >= 1
               for d in sim.state()["disturbances"])


async def test_sensor_dropout_is_bad_quality_on_both_protocols(shared_simulator: RunningSimulator):
    shared_simulator.inject("surface_roughness", "dropout")
    until(lambda: active(shared_simulator))
    dvs = await opcua_values(shared_simulator.opcua_endpoint)
    assert dvs[1].StatusCode.value == ua.StatusCodes.BadSensorFailure
    assert dvs[1].Value.Value is None
    assert dvs[0].StatusCode.is_good() and dvs[2].StatusCode.is_good()
    values, good, fault = await modbus_status(shared_simulator.modbus_port)
    assert math.isnan(values[1]) and not math.isnan(values[0])
    assert good == [True, False, True]
    assert fault == [False, True, False]
    assert shared_simulator.value("surface_roughness")["quality"] == "bad"
    shared_simulator.clear()
    until(lambda: shared_simulator.value("surface_roughness")["quality"] == "good")
    values, good, fault = await modbus_status(shared_simulator.modbus_port)
    assert not math.isnan(values[1]) and good == [True] * 3 and fault == [False] * 3


async def test_stuck_sensor_serves_a_frozen_good_value(shared_simulator: RunningSimulator):
    shared_simulator.inject("spindle_temp", "stuck")
    until(lambda: active(shared_simulator))
    first = await opcua_values(shared_simulator.opcua_endpoint)
    index = shared_simulator.value("spindle_temp")["index"]
    until(lambda: shared_simulator.value("spindle_temp")["index"] >= index + 3)
    later = await opcua_values(shared_simulator.opcua_endpoint)
    assert later[2].Value.Value == first[2].Value.Value and later[2].StatusCode.is_good()
    assert later[2].SourceTimestamp > first[2].SourceTimestamp  # still sampled, just frozen
    assert later[0].Value.Value != first[0].Value.Value


async def test_device_disconnect_and_reconnect(shared_simulator: RunningSimulator):
    # A client connected before the disconnect is dropped.
    client = AsyncModbusTcpClient("127.0.0.1", port=shared_simulator.modbus_port, retries=0,
                                  timeout=1)
    await client.connect()
    assert not (await client.read_holding_registers(0, count=2, device_id=1)).isError()
    shared_simulator.inject(None, "disconnect", machine=None)
    until(lambda: not shared_simulator.state()["connected"])
    until(lambda: not port_answers(shared_simulator.modbus_port) and not port_answers(
        shared_simulator.opcua_port))
    with pytest.raises(Exception):  # noqa: B017 - the connection is gone, whatever pymodbus calls it
        await client.read_holding_registers(0, count=2, device_id=1)
    client.close()
    with pytest.raises((OSError, asyncio.TimeoutError)):
        async with Client(shared_simulator.opcua_endpoint, timeout=2):
            pass
    with socket.socket() as s:  # refused, not hanging: the port is closed like a powered-off PLC
        s.settimeout(2)
        assert s.connect_ex(("127.0.0.1", shared_simulator.modbus_port)) != 0
    # The process keeps sampling while the device is off.
    index = shared_simulator.value("bore_diameter")["index"]
    until(lambda: shared_simulator.value("bore_diameter")["index"] > index)
    shared_simulator.clear()
    until(lambda: all(port_answers(p) for p in shared_simulator.ports.values()))
    values, good, _ = await modbus_status(shared_simulator.modbus_port)
    assert abs(values[0] - 25.0) < 0.05 and good == [True] * 3
    dvs = await opcua_values(shared_simulator.opcua_endpoint)
    assert all(dv.StatusCode.is_good() for dv in dvs)


async def test_timed_disconnect_reconnects_by_itself(shared_simulator: RunningSimulator):
    shared_simulator.inject(None, "disconnect", machine=None, for_seconds=1.5)
    until(lambda: not shared_simulator.state()["connected"])
    until(lambda: shared_simulator.state()["connected"], timeout=10)
    until(lambda: all(port_answers(p) for p in shared_simulator.ports.values()))
    (d,) = shared_simulator.state()["disturbances"]
    assert d["state"] == "finished"


def test_virtual_clock_runs_process_time_faster(simulator_factory):
    sim = simulator_factory(rate=2.0, extra_args=["--speed", "30",
                                                  "--start", "2026-01-01T00:00:00Z"])
    first = sim.state()
    until(lambda: sim.state()["process_time"] > first["process_time"] + 30, timeout=20)
    later = sim.state()
    # 2 samples per process second, whatever the real time it took.
    bore = later["machines"][0]["variables"]["bore_diameter"]
    assert bore["index"] == pytest.approx(2 * later["process_time"], abs=2)
    # Timestamps are virtual: --start plus the sample's process time.
    ts = datetime.fromisoformat(bore["ts"])
    assert ts == datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=(bore["index"] - 1) / 2)


async def test_one_machine_disconnects_behind_the_gateway(simulator_factory):
    from tests.fixtures.simulators import REPO

    sim = simulator_factory(config=REPO / "simulators/examples/grinding_line.yaml", rate=5.0)
    sim.inject(None, "disconnect", machine="Washer1")
    until(lambda: not sim.state()["machines"][1]["connected"])
    assert sim.state()["connected"] is True  # the device (gateway) itself still answers
    client = AsyncModbusTcpClient("127.0.0.1", port=sim.modbus_port, retries=0, timeout=1)
    await client.connect()
    try:
        grinder = await client.read_holding_registers(0, count=2, device_id=1)
        assert not grinder.isError()
        with pytest.raises(Exception):  # noqa: B017 - no answer: pymodbus times out
            await client.read_holding_registers(0, count=2, device_id=5)
    finally:
        client.close()
    async with Client(sim.opcua_endpoint, timeout=10) as opc:
        washer, grinder_dv = await opc.read_attributes(
            [opc.get_node("ns=2;s=Line2.Washer1.wash_temp"),
             opc.get_node("ns=2;s=Line2.Grinder1.shaft_diameter")], ua.AttributeIds.Value)
    assert washer.StatusCode.value == ua.StatusCodes.BadNoCommunication
    assert washer.Value.Value is None
    assert grinder_dv.StatusCode.is_good()
    sim.clear()
    until(lambda: sim.state()["machines"][1]["connected"])
    client = AsyncModbusTcpClient("127.0.0.1", port=sim.modbus_port, retries=0, timeout=2)
    await client.connect()
    try:
        back = await client.read_holding_registers(0, count=2, device_id=5)
    finally:
        client.close()
    value = client.convert_from_registers(back.registers, client.DATATYPE.FLOAT32)
    assert abs(value - 60.0) < 5
    async with Client(sim.opcua_endpoint, timeout=10) as opc:
        dv = (await opc.read_attributes([opc.get_node("ns=2;s=Line2.Washer1.wash_temp")],
                                        ua.AttributeIds.Value))[0]
    assert dv.StatusCode.is_good()
