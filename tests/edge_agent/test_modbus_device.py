"""Modbus against a real pymodbus server with known register contents: every data type in every
byte order, all four read function codes, scaling, and requests counted at the server.

Register contents are built here from the byte-order definitions (A = most significant byte),
independently of the agent's codec, so a mistake in the codec cannot cancel itself out.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pymodbus.server import ModbusSerialServer
from pymodbus.simulator import DataType, SimData, SimDevice

from edge_agent.sources.modbus import ModbusConfig, ModbusSource
from tests.fixtures.modbus_server import ModbusDeviceData

ORDERS = ("ABCD", "DCBA", "BADC", "CDAB")
VALUES: dict[str, Any] = {
    "int16": -12345, "uint16": 54321, "int32": -123456789, "uint32": 3123456789,
    "int64": -1234567890123456789, "float32": -1234.5, "float64": 3.141592653589793,
    "string": "PART-0042", "bool": True,
}
FORMATS = {"int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I", "int64": ">q",
           "float32": ">f", "float64": ">d"}
STRING_REGISTERS = 5


def device_registers(data_type: str, value: Any, order: str) -> list[int]:
    """What a device with this byte order holds, from the order's definition."""
    if data_type == "bool":
        return [1 if value else 0]
    if data_type == "string":
        raw = value.encode().ljust(2 * STRING_REGISTERS, b"\0")
    else:
        raw = struct.pack(FORMATS[data_type], value)  # A B C D ... most significant first
    swap_bytes = order in ("DCBA", "BADC")
    reverse_words = order in ("DCBA", "CDAB")
    words = [raw[i:i + 2] for i in range(0, len(raw), 2)]
    if reverse_words:
        words.reverse()
    if swap_bytes:
        words = [w[::-1] for w in words]
    return [int.from_bytes(w, "big") for w in words]


def layout() -> tuple[list[dict[str, Any]], dict[int, int]]:
    """Every type in every order, packed back to back from address 0."""
    tags: list[dict[str, Any]] = []
    registers: dict[int, int] = {}
    address = 0
    for data_type, value in VALUES.items():
        for order in ORDERS:
            regs = device_registers(data_type, value, order)
            tag = {"characteristic": f"{data_type}.{order}", "address": address,
                   "type": data_type, "byte_order": order}
            if data_type == "string":
                tag["length"] = STRING_REGISTERS
            tags.append(tag)
            for i, r in enumerate(regs):
                registers[address + i] = r
            address += len(regs)
    return tags, registers


def source(port: int, tags: list[dict[str, Any]], **extra: Any) -> ModbusSource:
    return ModbusSource(ModbusConfig.model_validate({
        "kind": "modbus", "name": "dut", "host": "127.0.0.1", "port": port, "timeout_s": 1,
        "tags": tags, **extra}))


async def read_once(src: ModbusSource) -> dict[str, Any]:
    await src.connect()
    try:
        return {s.characteristic: s for s in await src.read()}
    finally:
        await src.close()


def expected(data_type: str) -> float:
    value = VALUES[data_type]
    if data_type == "bool":
        return 1.0
    if data_type == "string":
        return float("nan")
    return float(value)


@pytest.mark.parametrize("function", ["holding", "input"])
async def test_every_type_in_every_byte_order(modbus_server_factory: Any, function: str) -> None:
    tags, registers = layout()
    data = ModbusDeviceData(1, holding=registers) if function == "holding" else \
        ModbusDeviceData(1, input=registers)
    server = await modbus_server_factory([data])
    numeric = [dict(t, function=function) for t in tags if t["type"] != "string"]
    got = await read_once(source(server.port, numeric))
    assert len(got) == len(numeric)
    for tag in numeric:
        sample = got[tag["characteristic"]]
        assert sample.quality == "good", tag
        assert sample.value == expected(tag["type"]), (tag, sample.value)
    # 68 contiguous registers of numbers, a gap where the strings are, then 4 bools: 2 requests.
    fc = 3 if function == "holding" else 4
    assert server.requests[fc] == 2


async def test_strings_in_every_byte_order_decode_to_text(modbus_server_factory: Any) -> None:
    from edge_agent.sources.modbus_codec import decode

    for order in ORDERS:
        assert decode(device_registers("string", "PART-0042", order), "string", order) == \
            "PART-0042"
    tags, registers = layout()
    server = await modbus_server_factory([ModbusDeviceData(1, holding=registers)])
    strings = [t for t in tags if t["type"] == "string"]
    got = await read_once(source(server.port, strings))
    # A text value is not a measurement: it arrives as a bad sample, never as garbage.
    assert all(got[t["characteristic"]].quality == "bad" for t in strings)


async def test_scale_offset_and_bad_raw(modbus_server_factory: Any) -> None:
    server = await modbus_server_factory([ModbusDeviceData(1, holding={
        0: device_registers("int16", 2345, "ABCD")[0],
        1: device_registers("int16", -32768, "ABCD")[0]})])
    got = await read_once(source(server.port, [
        {"characteristic": "temp", "address": 0, "type": "int16", "scale": 0.1,
         "offset": -10},
        {"characteristic": "missing", "address": 1, "type": "int16", "bad_raw": -32768}]))
    assert got["temp"].value == pytest.approx(224.5)
    assert got["missing"].quality == "bad" and got["missing"].value is None


async def test_coils_and_discrete_inputs(modbus_server_factory: Any) -> None:
    server = await modbus_server_factory([ModbusDeviceData(
        1, coils={0: True, 1: False, 2: True, 7: True, 8: False, 9: True},
        discrete={4: True, 5: False})])
    tags = [{"characteristic": f"c{a}", "address": a, "function": 1, "type": "bool"}
            for a in (0, 1, 2, 7, 8, 9)]
    tags += [{"characteristic": f"d{a}", "address": a, "function": 2, "type": "bool"}
             for a in (4, 5)]
    got = await read_once(source(server.port, tags))
    assert {k: v.value for k, v in got.items()} == {
        "c0": 1.0, "c1": 0.0, "c2": 1.0, "c7": 1.0, "c8": 0.0, "c9": 1.0, "d4": 1.0, "d5": 0.0}
    assert server.requests[1] == 2 and server.requests[2] == 1  # 0-2 and 7-9: two coil reads


async def test_requests_are_coalesced_and_split_as_planned(modbus_server_factory: Any) -> None:
    registers = {a: a for a in range(0, 80)}          # 40 float32, contiguous
    registers.update({a: a for a in range(200, 400)})  # 100 float32, contiguous: 2 requests
    registers.update({a: a for a in range(1000, 1050, 10)})  # 5 isolated int16
    server = await modbus_server_factory([ModbusDeviceData(1, holding=registers)])
    tags = [{"characteristic": f"a{i}", "address": 2 * i} for i in range(40)]
    tags += [{"characteristic": f"b{i}", "address": 200 + 2 * i} for i in range(100)]
    tags += [{"characteristic": f"c{a}", "address": a, "type": "int16"}
             for a in range(1000, 1050, 10)]
    got = await read_once(source(server.port, tags))
    assert len(got) == 145 and all(s.quality == "good" for s in got.values())
    assert server.requests[3] == 1 + 2 + 5
    assert got["c1040"].value == 1040.0


async def test_exception_response_marks_only_that_request_bad(modbus_server_factory: Any) -> None:
    server = await modbus_server_factory([ModbusDeviceData(1, holding={0: 1, 1: 2})])
    got = await read_once(source(server.port, [
        {"characteristic": "ok", "address": 0, "type": "uint16"},
        {"characteristic": "gone", "address": 500, "type": "uint16"}]))
    assert got["ok"].value == 1.0 and got["gone"].quality == "bad"


async def test_several_units_behind_one_gateway(modbus_server_factory: Any) -> None:
    server = await modbus_server_factory([
        ModbusDeviceData(1, holding={0: 11}), ModbusDeviceData(2, holding={0: 22})])
    got = await read_once(source(server.port, [
        {"characteristic": "u1", "address": 0, "type": "uint16"},
        {"characteristic": "u2", "address": 0, "type": "uint16", "unit_id": 2}]))
    assert got["u1"].value == 11.0 and got["u2"].value == 22.0


@pytest.fixture
async def serial_pair(tmp_path: Path) -> AsyncIterator[tuple[str, str]]:
    """A virtual null-modem cable: two pseudo-terminals joined by socat."""
    a, b = str(tmp_path / "ttyA"), str(tmp_path / "ttyB")
    proc = subprocess.Popen(["socat", "-d", "-d", f"pty,raw,echo=0,link={a}",
                             f"pty,raw,echo=0,link={b}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        if Path(a).exists() and Path(b).exists():
            break
        await asyncio.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("socat did not create the serial pair")
    yield a, b
    proc.terminate()
    proc.wait(5)


async def test_modbus_rtu_every_type_in_every_byte_order(serial_pair: tuple[str, str]) -> None:
    device_end, agent_end = serial_pair
    tags, registers = layout()
    numeric = [t for t in tags if t["type"] != "string"]
    regs = [registers.get(a, 0) for a in range(max(registers) + 1)]
    hr = [SimData(0, values=regs, datatype=DataType.REGISTERS)]
    empty_bits = [SimData(65535, values=[False], datatype=DataType.BITS)]
    empty_regs = [SimData(65535, values=[0], datatype=DataType.REGISTERS)]
    server = ModbusSerialServer([SimDevice(3, simdata=(empty_bits, empty_bits, hr, empty_regs))],
                                port=device_end, baudrate=38400)
    await server.serve_forever(background=True)
    try:
        src = ModbusSource(ModbusConfig.model_validate({
            "kind": "modbus", "name": "rtu", "transport": "rtu", "serial_port": agent_end,
            "baudrate": 38400, "unit_id": 3, "timeout_s": 1, "tags": numeric}))
        first = await read_once(src)
        second = await read_once(src)  # the port is released and reopened cleanly
    finally:
        with contextlib.suppress(Exception):
            await server.shutdown()
    for tag in numeric:
        for got in (first, second):
            sample = got[tag["characteristic"]]
            assert sample.quality == "good" and sample.value == expected(tag["type"]), tag
