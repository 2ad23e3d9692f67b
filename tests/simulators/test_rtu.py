"""Modbus RTU: the simulator at one end of a socat pty pair, masters at the other."""

from __future__ import annotations

import shutil
import struct
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pymodbus.client import AsyncModbusSerialClient

from tests.fixtures.simulators import RunningSimulator

pytestmark = pytest.mark.skipif(shutil.which("socat") is None, reason="needs socat (make system)")


@pytest.fixture
def serial_pair(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """Two connected pseudo-terminals: (simulator end, master end)."""
    sim_end, master_end = tmp_path / "sim-tty", tmp_path / "master-tty"
    socat = subprocess.Popen(
        ["socat", f"pty,raw,echo=0,link={sim_end}", f"pty,raw,echo=0,link={master_end}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not (sim_end.exists() and master_end.exists()):
        assert time.monotonic() < deadline, "socat did not create the pty pair"
        time.sleep(0.02)
    yield sim_end, master_end
    socat.terminate()
    socat.wait(timeout=5)


async def test_rtu_serves_the_same_values_as_tcp(simulator_factory, serial_pair):
    sim_end, master_end = serial_pair
    sim: RunningSimulator = simulator_factory(extra_args=[
        "--modbus-rtu", str(sim_end), "--rtu-baudrate", "38400",
    ])
    for name in ("bore_diameter", "surface_roughness", "spindle_temp"):
        sim.inject(name, "stuck")
    deadline = time.monotonic() + 10
    while not all(d["samples_affected"] >= 1 for d in sim.state()["disturbances"]):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    values = {k: v["value"] for k, v in sim.state()["machines"][0]["variables"].items()}

    client = AsyncModbusSerialClient(str(master_end), baudrate=38400, parity="N", timeout=2)
    assert await client.connect()
    try:
        rr = await client.read_holding_registers(0, count=6, device_id=1)
        assert not rr.isError(), rr
        bits = await client.read_discrete_inputs(0, count=3, device_id=1)
    finally:
        client.close()
    floats = [struct.unpack(">f", struct.pack(">HH", *rr.registers[i : i + 2]))[0]
              for i in (0, 2, 4)]
    expected = [struct.unpack(">f", struct.pack(">f", values[n]))[0]
                for n in ("bore_diameter", "surface_roughness", "spindle_temp")]
    assert floats == expected
    assert bits.bits[:3] == [True, True, True]

    out = subprocess.run(
        ["mbpoll", "-m", "rtu", "-b", "38400", "-P", "none", "-a", "1", "-0", "-r", "0",
         "-c", "3", "-t", "4:float", "-B", "-1", "-o", "2", str(master_end)],
        capture_output=True, text=True, timeout=20, check=True,
    ).stdout
    got = [float(line.split(":", 1)[1]) for line in out.splitlines() if line.startswith("[")]
    assert got == pytest.approx(expected, rel=1e-5)
