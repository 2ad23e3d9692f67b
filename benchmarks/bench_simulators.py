"""Simulator benchmark: how much process one `spc simulate` sustains, and what a client waits.

A: the per-sample cost in-process: `VariableProcess.next` alone, and a whole tick (model, Modbus
   register image in all encodings, OPC UA node write) with one sample per variable per tick as
   in real time, no network; samples per second of one core.
B: one simulator process serving a generated line (machines x 25 variables) at a given rate per
   variable over both protocols: the achieved sample rate (from /state), its CPU share and RSS,
   and the round-trip time of Modbus reads (25 float32 = 50 registers) and OPC UA reads
   (25 nodes in one request) from this process while it runs.

    .venv/bin/python benchmarks/bench_simulators.py                 # both
    .venv/bin/python benchmarks/bench_simulators.py b --machines 4 --rate 50 --seconds 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import psutil
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def generated_line(machines: int, variables: int = 25) -> dict:
    return {
        "line": "Bench",
        "machines": [
            {"name": f"M{m + 1}", "variables": [
                {"name": f"v{i}", "unit": "mm", "mean": 10.0 + i, "sigma": 0.01}
                for i in range(variables)]}
            for m in range(machines)
        ],
    }


async def scenario_a(n: int) -> None:
    from simulators.clock import VirtualClock
    from simulators.config import VariableConfig, parse_line_config
    from simulators.line import LineSimulation
    from simulators.modbus_server import ModbusLine
    from simulators.opcua_server import OpcUaLine
    from simulators.process import VariableProcess

    p = VariableProcess("M", VariableConfig(name="x", mean=0.0, sigma=1.0), 0)
    t0 = time.perf_counter()
    for i in range(n):
        p.next(float(i))
    alone = n / (time.perf_counter() - t0)

    config = parse_line_config(generated_line(1))
    clock = VirtualClock(speed=0)
    line = LineSimulation(config, 0, clock, rate_hz=100.0)
    modbus = ModbusLine(config)
    opcua = OpcUaLine(config, "127.0.0.1", free_port(), clock.timestamp)
    await opcua.start()
    line.sample_listeners += [modbus.on_events, opcua.on_events]
    # One tick per sample period, as in real time: every tick serves one sample per variable.
    ticks = n // 25
    await line.tick()
    t0 = time.perf_counter()
    for _ in range(ticks):
        clock.advance(0.01)
        await line.tick()
    served = 25 * ticks / (time.perf_counter() - t0)
    await opcua.stop()
    print(f"A  process model alone:              {alone:>12,.0f} samples/s")
    print(f"A  tick: model + Modbus image + OPC UA:  {served:>9,.0f} samples/s")


async def read_latencies(opcua: str, modbus_port: int, seconds: float) -> dict[str, list[float]]:
    from asyncua import Client
    from pymodbus.client import AsyncModbusTcpClient

    out: dict[str, list[float]] = {"modbus": [], "opcua": []}
    mb = AsyncModbusTcpClient("127.0.0.1", port=modbus_port)
    await mb.connect()
    async with Client(opcua, timeout=10) as client:
        nodes = [client.get_node(f"ns=2;s=Bench.M1.v{i}") for i in range(25)]
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            rr = await mb.read_holding_registers(0, count=50, device_id=1)
            out["modbus"].append(time.perf_counter() - t0)
            assert not rr.isError()
            t0 = time.perf_counter()
            await client.read_values(nodes)
            out["opcua"].append(time.perf_counter() - t0)
            await asyncio.sleep(0.02)
    mb.close()
    return out


def state(url: str) -> dict:
    with urllib.request.urlopen(url + "/state", timeout=10) as resp:
        return json.loads(resp.read())


def samples_so_far(s: dict) -> int:
    return sum(v["index"] for m in s["machines"] for v in m["variables"].values())


def scenario_b(machines: int, rate: float, seconds: float) -> None:
    ports = {"opcua": free_port(), "modbus": free_port(), "control": free_port()}
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "line.yaml"
        config.write_text(yaml.safe_dump(generated_line(machines)))
        proc = subprocess.Popen(
            [sys.executable, "-m", "simulators", "--config", str(config), "--rate", str(rate),
             "--opcua-port", str(ports["opcua"]), "--modbus-port", str(ports["modbus"]),
             "--control-port", str(ports["control"])],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        try:
            assert proc.stdout is not None
            assert "simulator ready" in proc.stdout.readline()
            url = f"http://127.0.0.1:{ports['control']}"
            ps = psutil.Process(proc.pid)
            time.sleep(2)  # let start-up settle
            first = state(url)
            ps.cpu_percent(None)
            lat = asyncio.run(read_latencies(
                f"opc.tcp://127.0.0.1:{ports['opcua']}/shopfloor-spc/", ports["modbus"], seconds))
            cpu = ps.cpu_percent(None)
            last = state(url)
            rss = ps.memory_info().rss / 2**20
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    wanted = machines * 25 * rate
    # Samples and process time from the same /state snapshots: no HTTP timing in the ratio.
    achieved = (samples_so_far(last) - samples_so_far(first)) / (
        last["process_time"] - first["process_time"])
    # Behind schedule at the end: samples due by then (one at t=0, then one per period) minus made.
    due = machines * 25 * (int(last["process_time"] * rate) + 1)
    lag = due - samples_so_far(last)

    def pct(xs: list[float], q: float) -> float:
        return sorted(xs)[min(len(xs) - 1, int(q * len(xs)))] * 1000

    print(f"B  {machines} machines x 25 variables at {rate:g} Hz = {wanted:,.0f} samples/s wanted")
    print(f"B  achieved {achieved:,.0f} samples/s, {lag} samples behind at the end, "
          f"CPU {cpu:.0f}% of one core, RSS {rss:.0f} MB")
    for name, xs in lat.items():
        print(f"B  {name:<6} read of 25 values: median {statistics.median(xs) * 1000:.2f} ms, "
              f"p99 {pct(xs, 0.99):.2f} ms ({len(xs)} reads)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("scenario", nargs="?", choices=["a", "b", "all"], default="all")
    p.add_argument("--samples", type=int, default=200_000)
    p.add_argument("--machines", type=int, default=4)
    p.add_argument("--rate", type=float, default=20.0)
    p.add_argument("--seconds", type=float, default=15.0)
    args = p.parse_args()
    if args.scenario in ("a", "all"):
        asyncio.run(scenario_a(args.samples))
    if args.scenario in ("b", "all"):
        scenario_b(args.machines, args.rate, args.seconds)


if __name__ == "__main__":
    main()
