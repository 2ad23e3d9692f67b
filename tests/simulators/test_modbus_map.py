"""The Modbus register map: encodings against hand-checked registers, and read back by mbpoll.

mbpoll (an independent master) decodes float32 ABCD (-B) and CDAB itself; for the other orders and
for float64 it reads the raw registers, which this test reassembles byte by byte from the
documented order, without the simulator's own codec.
"""

from __future__ import annotations

import math
import re
import struct
import subprocess
import sys
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pymodbus.client import AsyncModbusTcpClient

from simulators import modbus_map as mm
from simulators.config import VariableConfig
from tests.fixtures.simulators import REPO, RunningSimulator

VARIABLES = ["bore_diameter", "surface_roughness", "spindle_temp"]
GRINDING_LINE = REPO / "simulators" / "examples" / "grinding_line.yaml"


@pytest.mark.parametrize(
    ("order", "f32", "f64"),
    [
        ("ABCD", [0x3F80, 0x0000], [0x3FF0, 0, 0, 0]),
        ("CDAB", [0x0000, 0x3F80], [0, 0, 0, 0x3FF0]),
        ("BADC", [0x803F, 0x0000], [0xF03F, 0, 0, 0]),
        ("DCBA", [0x0000, 0x803F], [0, 0, 0, 0xF03F]),
    ],
)
def test_float_encodings_of_one_point_zero(order, f32, f64):
    assert mm.encode_float(1.0, "f", order) == f32
    assert mm.encode_float(1.0, "d", order) == f64
    assert mm.decode_float(f32, "f", order) == 1.0
    assert mm.decode_float(f64, "d", order) == 1.0


def test_float_encodings_of_a_value_with_four_distinct_bytes():
    # -2.5e-3 as float32 is 0xBB23D70A: bytes A=BB B=23 C=D7 D=0A.
    assert mm.encode_float(-2.5e-3, "f", "ABCD") == [0xBB23, 0xD70A]
    assert mm.encode_float(-2.5e-3, "f", "CDAB") == [0xD70A, 0xBB23]
    assert mm.encode_float(-2.5e-3, "f", "BADC") == [0x23BB, 0x0AD7]
    assert mm.encode_float(-2.5e-3, "f", "DCBA") == [0x0AD7, 0x23BB]


@pytest.mark.parametrize(
    "value", [0.0, -0.0, 1.0, -2.5e-3, 25.0012, 1e-40, -1e30, 3.4e38, 1e300, math.inf, math.nan,
              None],
)
def test_fast_encodings_match_the_reference_encoder(value):
    fast = mm.float_encodings(value)
    for order in ("ABCD", "CDAB", "BADC", "DCBA"):
        f32, f64 = fast[order]
        assert f64 == mm.encode_float(value, "d", order)
        assert f32 == mm.encode_float(value, "f", order)
        if value is not None and math.isfinite(value) and abs(value) > 3.5e38:
            # Beyond float32 range: infinity of the same sign, not an exception.
            assert mm.decode_float(f32, "f", order) == math.copysign(math.inf, value)


@given(st.floats(allow_nan=False, width=32))
def test_float32_round_trips_in_every_order(x):
    for order in ("ABCD", "CDAB", "BADC", "DCBA"):
        assert mm.decode_float(mm.encode_float(x, "f", order), "f", order) == x
        assert mm.float_encodings(x)[order][0] == mm.encode_float(x, "f", order)


@given(st.floats(allow_nan=False))
def test_float64_round_trips_and_fast_path_agrees(x):
    for order in ("ABCD", "CDAB", "BADC", "DCBA"):
        regs = mm.float_encodings(x)[order][1]
        assert regs == mm.encode_float(x, "d", order)
        assert mm.decode_float(regs, "d", order) == x


def test_int16_scaling_no_value_and_saturation():
    assert mm.encode_int16(25.0024, 1000) == 25002
    assert mm.encode_int16(-1.5, 100) == (-150) & 0xFFFF
    assert mm.encode_int16(None, 1000) == 0x8000
    assert mm.encode_int16(1e9, 1) == 32767
    assert mm.encode_uint32(70000) == [1, 70000 - 65536]


def test_default_int16_scale_fits_the_engineering_range():
    v = VariableConfig(name="t", mean=45.0, sigma=0.5, eu_range=(0.0, 120.0))
    assert v.scale == 100.0  # 120 * 100 = 12000 fits, 120 * 1000 does not
    assert VariableConfig(name="d", mean=25.0, sigma=0.005, eu_range=(24.9, 25.1)).scale == 1000.0


def mbpoll(port: int, table: str, address: int, count: int, *flags: str, unit: int = 1):
    """{address: text} from one mbpoll read (0-based addresses)."""
    out = subprocess.run(
        ["mbpoll", "-m", "tcp", "-p", str(port), "-a", str(unit), "-0", "-r", str(address),
         "-c", str(count), "-t", table, *flags, "-1", "127.0.0.1"],
        capture_output=True, text=True, timeout=20, check=True,
    ).stdout
    return {int(a): v for a, v in re.findall(r"^\[(\d+)\]:\s+(\S+)", out, flags=re.M)}


def reassemble(registers: list[int], order: str) -> bytes:
    """Big-endian bytes from registers in `order`, written out per order (not via word_order)."""
    raw = b"".join(r.to_bytes(2, "big") for r in registers)
    pairs = [raw[i : i + 2] for i in range(0, len(raw), 2)]
    if order == "ABCD":
        return raw
    if order == "CDAB":
        return b"".join(pairs[::-1])
    if order == "BADC":
        return b"".join(bytes([p[1], p[0]]) for p in pairs)
    return raw[::-1]  # DCBA


def freeze_all(sim: RunningSimulator) -> dict[str, float]:
    for name in VARIABLES:
        sim.inject(name, "stuck")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        state = sim.state()
        if all(d["samples_affected"] >= 1 for d in state["disturbances"]):
            return {k: v["value"] for k, v in state["machines"][0]["variables"].items()}
        time.sleep(0.05)
    raise AssertionError("variables did not freeze")


def f32(x: float) -> float:
    return struct.unpack(">f", struct.pack(">f", x))[0]


def test_mbpoll_reads_every_encoding_of_every_variable(shared_simulator: RunningSimulator):
    values = freeze_all(shared_simulator)
    expected32 = [f32(values[n]) for n in VARIABLES]
    expected64 = [values[n] for n in VARIABLES]
    port = shared_simulator.modbus_port
    # mbpoll's own float decoding: -B is ABCD, its default is CDAB; holding and input tables.
    for table in ("4:float", "3:float"):
        abcd = mbpoll(port, table, 0, 3, "-B")
        cdab = mbpoll(port, table, 100, 3)
        for i, want in enumerate(expected32):
            assert float(abcd[2 * i]) == pytest.approx(want, rel=1e-5)
            assert float(cdab[100 + 2 * i]) == pytest.approx(want, rel=1e-5)
    # Raw registers for every order, reassembled here.
    for order, base in mm.FLOAT32_ORDERS.items():
        raw = mbpoll(port, "4:hex", base, 6)
        for i, want in enumerate(expected32):
            regs = [int(raw[base + 2 * i], 16), int(raw[base + 2 * i + 1], 16)]
            assert struct.unpack(">f", reassemble(regs, order))[0] == want, order
    for order, base in mm.FLOAT64_ORDERS.items():
        raw = mbpoll(port, "4:hex", base, 12)
        for i, want in enumerate(expected64):
            regs = [int(raw[base + 4 * i + k], 16) for k in range(4)]
            assert struct.unpack(">d", reassemble(regs, order))[0] == want, order
    # int16 with the scale an integrator reads from --print-map.
    printed = subprocess.run(
        [sys.executable, "-m", "simulators", "--print-map"], capture_output=True, text=True,
        check=True, cwd=REPO,
    ).stdout
    scales = {name: float(scale) for scale, name in re.findall(
        r"^\s+holding\+input\s+8\d\d\s+1\s+int16 x(\S+)\s+(\w+)", printed, flags=re.M)}
    assert scales == {"bore_diameter": 1000, "surface_roughness": 10000, "spindle_temp": 100}
    scaled = mbpoll(port, "4", mm.INT16_BASE, 3)
    for i, name in enumerate(VARIABLES):
        got = int(scaled[mm.INT16_BASE + i]) / scales[name]
        assert got == pytest.approx(values[name], abs=1 / scales[name])


async def test_uint32_sample_counters_count_samples(shared_simulator: RunningSimulator):
    client = AsyncModbusTcpClient("127.0.0.1", port=shared_simulator.modbus_port)
    await client.connect()
    try:
        before = shared_simulator.value("bore_diameter")["index"]
        regs = (await client.read_input_registers(mm.SAMPLE_COUNTER_BASE, count=6,
                                                  device_id=1)).registers
        after = shared_simulator.value("bore_diameter")["index"]
        count = client.convert_from_registers(regs[:2], client.DATATYPE.UINT32)
        assert before <= count <= after
        time.sleep(0.5)
        regs2 = (await client.read_holding_registers(mm.SAMPLE_COUNTER_BASE, count=2,
                                                     device_id=1)).registers
        assert client.convert_from_registers(regs2, client.DATATYPE.UINT32) > count
        # pymodbus's own decoder agrees on the word-swapped block.
        cdab = (await client.read_holding_registers(100, count=2, device_id=1)).registers
        abcd = (await client.read_holding_registers(0, count=2, device_id=1)).registers
        assert client.convert_from_registers(
            cdab, client.DATATYPE.FLOAT32, word_order="little"
        ) == pytest.approx(client.convert_from_registers(abcd, client.DATATYPE.FLOAT32), rel=0.01)
    finally:
        client.close()


async def test_several_unit_ids_serve_their_own_machine(simulator_factory):
    sim = simulator_factory(config=GRINDING_LINE, rate=5.0)
    units = {m["name"]: m["unit_id"] for m in sim.state()["machines"]}
    assert units == {"Grinder1": 1, "Washer1": 5}
    client = AsyncModbusTcpClient("127.0.0.1", port=sim.modbus_port)
    await client.connect()
    try:
        grinder = (await client.read_holding_registers(0, count=2, device_id=1)).registers
        washer = (await client.read_holding_registers(0, count=2, device_id=5)).registers
        missing = await client.read_holding_registers(0, count=2, device_id=9)
    finally:
        client.close()
    decode = AsyncModbusTcpClient.convert_from_registers
    dtype = AsyncModbusTcpClient.DATATYPE.FLOAT32
    assert decode(grinder, dtype) == pytest.approx(12.0, abs=0.02)  # shaft_diameter
    assert decode(washer, dtype) == pytest.approx(60.0, abs=5)  # wash_temp
    assert missing.isError()
    scaled = mbpoll(sim.modbus_port, "4", mm.INT16_BASE + 1, 1, unit=5)
    assert int(scaled[mm.INT16_BASE + 1]) / 10 == pytest.approx(150.0, abs=80)


def test_readme_documents_the_map_layout():
    readme = (REPO / "simulators" / "README.md").read_text()
    for fragment in ["float32 ABCD", "float32 CDAB", "float32 BADC", "float32 DCBA",
                     "float64", "int16", "uint32", "--print-map", "discrete input", "coil"]:
        assert fragment in readme, fragment


def test_modbus_writes_are_refused(shared_simulator: RunningSimulator):
    out = subprocess.run(
        ["mbpoll", "-m", "tcp", "-p", str(shared_simulator.modbus_port), "-a", "1", "-0", "-r", "0",
         "-t", "4", "-1", "127.0.0.1", "1234"],
        capture_output=True, text=True, timeout=20,
    )
    assert "Illegal data address" in out.stdout + out.stderr
