"""Failure handling: one bad device never stops the others; failures and recoveries are logged
once; OPC UA follows a server restart (new process, fresh namespace) without an agent restart."""

from __future__ import annotations

import asyncio
import logging
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from edge_agent.runner import SourceRunner
from edge_agent.sources.base import Sample
from edge_agent.sources.modbus import ModbusConfig, ModbusSource
from edge_agent.sources.opcua import OpcuaConfig, OpcuaSource
from tests.fixtures.modbus_server import ModbusDeviceData, ModbusTestServer
from tests.fixtures.net import free_port
from tests.fixtures.simulators import REPO, RunningSimulator, port_answers

VARIABLES = ("bore_diameter", "surface_roughness", "spindle_temp")


def modbus(name: str, port: int, **extra: Any) -> ModbusSource:
    return ModbusSource(ModbusConfig.model_validate({
        "kind": "modbus", "name": name, "host": "127.0.0.1", "port": port, "interval_s": 0.1,
        "timeout_s": 0.5, "retries": 0, "backoff_initial_s": 0.1, "backoff_max_s": 0.4,
        "tags": [{"characteristic": f"{name}.x", "address": 0}], **extra}))


class Collector:
    def __init__(self) -> None:
        self.samples: list[Sample] = []

    def __call__(self, samples: Any) -> None:
        self.samples.extend(samples)

    def count(self, prefix: str) -> int:
        return sum(1 for s in self.samples if s.characteristic.startswith(prefix))


@pytest.fixture
def silent_device() -> Iterator[int]:
    """A TCP port that accepts connections and never answers (a hung PLC or a dead gateway)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    yield srv.getsockname()[1]
    srv.close()


async def run_for(runners: list[SourceRunner], seconds: float) -> None:
    stop = asyncio.Event()
    tasks = [asyncio.create_task(r.run(stop)) for r in runners]
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 10)


async def test_unreachable_devices_do_not_slow_the_others(
        modbus_server_factory: Any, silent_device: int,
        caplog: pytest.LogCaptureFixture) -> None:
    good = await modbus_server_factory([ModbusDeviceData(1, holding={0: 0x41C8, 1: 0})])
    sink = Collector()
    runners = [SourceRunner(modbus("good1", good.port), sink),
               SourceRunner(modbus("good2", good.port), sink),
               SourceRunner(modbus("closed", free_port()), sink),
               SourceRunner(modbus("silent", silent_device), sink)]
    # Alone, for comparison:
    alone = Collector()
    await run_for([SourceRunner(modbus("good1", good.port), alone)], 2.0)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="edge_agent"):
        await run_for(runners, 2.0)
    baseline = alone.count("good1")
    assert baseline >= 15
    for name in ("good1", "good2"):
        assert sink.count(name) >= baseline - 2, (name, sink.count(name), baseline)
    assert sink.count("closed") == sink.count("silent") == 0
    states = {r.status.name: r.status for r in runners}
    assert states["closed"].last_error and "cannot connect" in states["closed"].last_error
    assert states["silent"].last_error
    failures = [r.getMessage() for r in caplog.records if "retrying in the background" in
                r.getMessage()]
    # Logged once each, although each failed many times.
    assert sorted(m.split(":")[0] for m in failures) == ["source closed", "source silent"]
    assert states["closed"].failures >= 3


async def test_failure_and_recovery_logged_once_each(
        caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    server = await ModbusTestServer([ModbusDeviceData(1, holding={0: 0x41C8, 1: 0})],
                                    port).start()
    sink = Collector()
    runner = SourceRunner(modbus("plc", port), sink)
    stop = asyncio.Event()
    with caplog.at_level(logging.INFO, logger="edge_agent"):
        task = asyncio.create_task(runner.run(stop))
        await asyncio.sleep(0.6)
        before = sink.count("plc")
        await server.stop()
        await asyncio.sleep(1.5)
        assert runner.status.state == "retrying"
        during = sink.count("plc")
        server = await ModbusTestServer([ModbusDeviceData(1, holding={0: 0x41C8, 1: 0})],
                                        port).start()
        for _ in range(40):
            await asyncio.sleep(0.1)
            if runner.status.state == "connected" and sink.count("plc") > during:
                break
        stop.set()
        await asyncio.wait_for(task, 10)
        await server.stop()
    assert before > 0 and sink.count("plc") > during
    messages = [r.getMessage() for r in caplog.records if r.name == "edge_agent.runner"]
    assert sum("retrying in the background" in m for m in messages) == 1, messages
    assert sum("recovered after" in m for m in messages) == 1, messages


def restart(sim: RunningSimulator) -> None:
    """Stop the simulator process and start a new one on the same ports."""
    sim.stop()
    with sim.log_path.open("ab") as log:
        sim.process = subprocess.Popen(sim.args, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    for _ in range(300):
        if port_answers(sim.opcua_port) and sim.log().count("simulator ready") >= 2:
            return
        if sim.process.poll() is not None:
            raise RuntimeError(sim.log())
        time.sleep(0.05)
    raise RuntimeError("simulator did not come back")


def opcua(sim: RunningSimulator, **extra: Any) -> OpcuaSource:
    return OpcuaSource(OpcuaConfig.model_validate({
        "kind": "opcua", "name": "cnc1", "endpoint": sim.opcua_endpoint, "interval_s": 0.1,
        "security": {"policy": "None", "allow_insecure": True},
        "timeout_s": 1, "backoff_initial_s": 0.1, "backoff_max_s": 0.5,
        "tags": [{"node_id": f"nsu=urn:shopfloor-spc:simulator;s=Line1.CNC1.{v}",
                  "characteristic": v} for v in VARIABLES], **extra}))


@pytest.mark.parametrize("mode", ["poll", "subscribe"])
async def test_opcua_resumes_after_the_server_process_restarts(
        simulator: RunningSimulator, mode: str) -> None:
    sink = Collector()
    runner = SourceRunner(opcua(simulator, mode=mode), sink)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        for _ in range(100):
            await asyncio.sleep(0.1)
            if sink.count("bore_diameter") >= 5:
                break
        assert runner.status.state == "connected"
        await asyncio.to_thread(restart, simulator)
        mark = len(sink.samples)
        for _ in range(150):
            await asyncio.sleep(0.1)
            fresh = [s for s in sink.samples[mark:] if s.quality == "good"]
            if {s.characteristic for s in fresh} == set(VARIABLES) and len(fresh) >= 15:
                break
        else:
            pytest.fail(f"no fresh good samples after the restart; state {runner.status}")
        assert runner.status.state == "connected" and runner.status.failures >= 1
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def test_opcua_subscription_delivers_every_sample(simulator: RunningSimulator) -> None:
    source = opcua(simulator, mode="subscribe", sampling_interval_ms=50)
    await source.connect()
    got: list[Sample] = []
    try:
        for _ in range(30):
            got += await source.read()
    finally:
        await source.close()
    bore = [s for s in got if s.characteristic == "bore_diameter"]
    stamps = [s.ts for s in bore]
    assert len(bore) >= 8 and len(set(stamps)) == len(stamps)
    assert all(s.quality == "good" and 24.9 < (s.value or 0) < 25.1 for s in bore)


async def test_opcua_deadband_suppresses_small_changes(simulator: RunningSimulator) -> None:
    source = OpcuaSource(OpcuaConfig.model_validate({
        "kind": "opcua", "name": "cnc1", "endpoint": simulator.opcua_endpoint,
        "security": {"policy": "None", "allow_insecure": True},
        "mode": "subscribe", "interval_s": 0.1, "sampling_interval_ms": 50, "queue_size": 5,
        "tags": [
            # sigma is 0.005 mm: a 1 mm deadband lets only the first value through.
            {"node_id": "ns=2;s=Line1.CNC1.bore_diameter", "characteristic": "bore",
             "deadband": 1.0},
            {"node_id": "ns=2;s=Line1.CNC1.spindle_temp", "characteristic": "temp"}]}))
    await source.connect()
    got: list[Sample] = []
    try:
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            got += await source.read()
    finally:
        await source.close()
    assert sum(s.characteristic == "bore" for s in got) == 1
    assert sum(s.characteristic == "temp" for s in got) >= 10
