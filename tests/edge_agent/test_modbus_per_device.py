"""Per-device Modbus settings are honoured: each source's `retries`, `timeout_s` and `interval_s`
are its own. A device that does not answer gets exactly `retries` + 1 requests per read (counted
at the device), a slow device is read or given up on according to its own timeout, and while one
device hangs on a request the others keep polling at their own interval. No assertion depends on
how fast this machine is: only on counts, on the order of events, and on upper bounds (a loaded
machine polls less often, never more often)."""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from edge_agent.runner import SourceRunner
from edge_agent.sources.base import Sample, SourceError
from edge_agent.sources.modbus import ModbusConfig, ModbusSource
from edge_agent.threads import SourceThread
from tests.fixtures.modbus_server import ModbusDeviceData


class ModbusDevice:
    """A Modbus TCP device that answers read-holding-registers with zeros after `delay` seconds,
    or never (`delay=None`), and counts the requests it receives per unit id."""

    def __init__(self, delay: float | None) -> None:
        self.delay = delay
        self.requests: Counter[int] = Counter()
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> ModbusDevice:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                tid, _, length, unit = struct.unpack(">HHHB", await reader.readexactly(7))
                pdu = await reader.readexactly(length - 1)
                self.requests[unit] += 1
                if self.delay is not None:
                    task = asyncio.create_task(self._answer(writer, tid, unit, pdu))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
        writer.close()

    async def _answer(self, writer: asyncio.StreamWriter, tid: int, unit: int,
                      pdu: bytes) -> None:
        await asyncio.sleep(self.delay or 0)
        function, _, count = struct.unpack(">BHH", pdu[:5])
        body = bytes([function, 2 * count]) + b"\0" * (2 * count)
        with contextlib.suppress(ConnectionError):
            writer.write(struct.pack(">HHHB", tid, 0, len(body) + 1, unit) + body)
            await writer.drain()

    def drop_connections(self) -> None:
        for writer in self._writers:
            writer.close()
        self._writers.clear()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            self.drop_connections()


@pytest.fixture
async def device_factory() -> AsyncIterator[Callable[..., Any]]:
    started: list[ModbusDevice] = []

    async def start(delay: float | None) -> ModbusDevice:
        device = await ModbusDevice(delay).start()
        started.append(device)
        return device

    yield start
    for device in started:
        await device.stop()


def source(name: str, port: int, **extra: Any) -> ModbusSource:
    return ModbusSource(ModbusConfig.model_validate({
        "kind": "modbus", "name": name, "host": "127.0.0.1", "port": port,
        "tags": [{"characteristic": f"{name}.x", "address": 0, "type": "uint16"}], **extra}))


async def failed_read(src: ModbusSource) -> str:
    await src.connect()
    try:
        with pytest.raises(SourceError) as info:
            await src.read()
    finally:
        await src.close()
    return str(info.value)


async def test_each_device_gets_its_own_number_of_retries(device_factory: Any) -> None:
    dead = await device_factory(delay=None)
    # Two devices (unit ids) behind the same silent gateway, read at the same time, each with
    # its own retries: the gateway counts retries + 1 requests for each.
    one = source("one", dead.port, unit_id=1, timeout_s=0.2, retries=3)
    two = source("two", dead.port, unit_id=2, timeout_s=0.2, retries=0)
    errors = await asyncio.gather(failed_read(one), failed_read(two))
    assert dead.requests == {1: 4, 2: 1}
    assert all("unit" in e for e in errors)
    dead.requests.clear()
    assert "unit 1" in await failed_read(source("three", dead.port, timeout_s=0.1, retries=1))
    assert dead.requests == {1: 2}


async def test_each_device_gets_its_own_timeout(device_factory: Any) -> None:
    slow = await device_factory(delay=0.3)  # answers every request after 0.3 s
    patient = source("patient", slow.port, unit_id=1, timeout_s=10, retries=0)
    await patient.connect()
    try:
        samples = await patient.read()
    finally:
        await patient.close()
    assert [(s.characteristic, s.value, s.quality) for s in samples] == [
        ("patient.x", 0.0, "good")]
    # The same device with a timeout shorter than its answer: given up after its retries.
    slow.requests.clear()
    await failed_read(source("hasty", slow.port, unit_id=2, timeout_s=0.05, retries=2))
    assert slow.requests == {2: 3}


async def test_a_connection_closed_during_a_request_fails_the_read_at_once(
        device_factory: Any) -> None:
    """pymodbus alone would wait out timeout_s (here a minute) and each retry after the device
    closed the connection; the source notices the loss and fails the read."""
    dead = await device_factory(delay=None)
    src = source("dropped", dead.port, timeout_s=60, retries=3)
    await src.connect()
    try:
        read = asyncio.create_task(src.read())
        for _ in range(600):
            if dead.requests[1]:
                break
            await asyncio.sleep(0.05)
        dead.drop_connections()
        with pytest.raises(SourceError, match="closed the connection"):
            await asyncio.wait_for(read, 30)  # a guard against a hang, far below 4 x 60 s
    finally:
        await src.close()
    assert dead.requests == {1: 1}


async def test_the_runner_lets_every_configured_retry_happen(device_factory: Any) -> None:
    dead = await device_factory(delay=None)
    src = source("patient", dead.port, timeout_s=0.5, retries=8, errors_before_reconnect=1,
                 backoff_initial_s=30)
    assert src.read_timeout_s == 9 * 0.5 + 1
    runner = SourceRunner(src, lambda samples: None)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        for _ in range(1200):  # one failed read (then a 30 s backoff)
            if runner.status.failures:
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    assert dead.requests == {1: 9}


class Sink:
    def __init__(self) -> None:
        self.samples: list[Sample] = []

    def __call__(self, samples: Any) -> None:
        self.samples.extend(samples)


async def test_a_hung_device_does_not_hold_up_the_others(
        device_factory: Any, modbus_server_factory: Any) -> None:
    """As in the agent, each source in its own thread: the dead device's one request hangs
    (its timeout is long) while the others poll at their own intervals."""
    dead = await device_factory(delay=None)
    good = await modbus_server_factory([ModbusDeviceData(1, holding={0: 7}),
                                        ModbusDeviceData(2, holding={0: 9})])
    fast_interval, slow_interval = 0.05, 1.0
    sink = Sink()
    loop = asyncio.get_running_loop()
    threads = [
        SourceThread(source("dead", dead.port, timeout_s=60, retries=0, interval_s=0.05), sink,
                     loop),
        SourceThread(source("fast", good.port, unit_id=1, timeout_s=1, interval_s=fast_interval),
                     sink, loop),
        SourceThread(source("slow", good.port, unit_id=2, timeout_s=1, interval_s=slow_interval),
                     sink, loop),
    ]

    def count(name: str) -> int:
        return sum(s.characteristic == f"{name}.x" for s in sink.samples)

    started = time.monotonic()
    for thread in threads:
        thread.start()
    try:
        for _ in range(600):  # the dead device's first request has arrived and hangs
            if dead.requests[1]:
                break
            await asyncio.sleep(0.05)
        before = count("fast")
        for _ in range(600):  # meanwhile the fast device polls 30 more times
            if count("fast") >= before + 30:
                break
            await asyncio.sleep(0.05)
        # ... while the dead device is still waiting for the answer to its first request
        assert dead.requests == {1: 1}
        assert count("fast") >= before + 30
        assert count("slow") >= 1
    finally:
        dead.drop_connections()  # ends its hanging request, so that its runner sees the stop
        await asyncio.gather(*(t.stop() for t in threads))
    elapsed = time.monotonic() - started
    # Each device at (at most) its own cadence: the fast one is not slowed to the slow one's
    # interval, and neither polls more often than configured.
    assert count("fast") <= elapsed / fast_interval + 2
    assert count("slow") <= elapsed / slow_interval + 2
    assert count("fast") > count("slow")
    assert count("dead") == 0
    assert {s.value for s in sink.samples} == {7.0, 9.0}
