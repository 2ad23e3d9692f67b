"""The uploader against a real HTTP receiver of the ingest contract."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge_agent.buffer import SqliteBuffer
from edge_agent.config import AgentConfig, parse_config
from edge_agent.sources.base import Sample
from edge_agent.uploader import Backoff, Uploader, retry_after_seconds
from tests.fixtures.ingest_receiver import IngestReceiver, Reply

T0 = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)


def config_for(url: str, tmp_path: Path, **upload: object) -> AgentConfig:
    return parse_config({
        "agent": {"name": "edge-test"},
        "server": {"url": url, "api_key": "agent-key-1", "timeout_s": 2},
        "buffer": {"path": str(tmp_path / "buf.sqlite"), "max_samples": 10_000},
        "upload": {"batch_size": 10, "interval_s": 0.1, "backoff_initial_s": 0.05,
                   "backoff_max_s": 0.2, **upload},
        "sources": [{"kind": "modbus", "name": "m", "host": "127.0.0.1",
                     "tags": [{"characteristic": "x", "address": 0}]}],
    }, env={})


def make(n: int, start: int = 0) -> list[Sample]:
    return [Sample("bore_diameter", T0 + timedelta(seconds=i), 25.0 + i / 1000, "good", None)
            for i in range(start, start + n)]


@pytest.fixture
def buffer(tmp_path: Path) -> SqliteBuffer:
    return SqliteBuffer(tmp_path / "buf.sqlite", 10_000)


async def test_batches_follow_the_contract(ingest_receiver: IngestReceiver, tmp_path: Path,
                                          buffer: SqliteBuffer) -> None:
    buffer.append(make(25))
    buffer.append([Sample("bore_diameter", T0, None, "bad", "P-1")])
    up = Uploader(config_for(ingest_receiver.url, tmp_path), buffer)
    assert await up.drain() is None
    await up.aclose()
    assert buffer.depth == 0
    assert ingest_receiver.statuses() == [200, 200, 200]
    req = ingest_receiver.requests[0]
    assert req.headers["authorization"] == "Bearer agent-key-1"
    assert req.headers["content-encoding"] == "gzip"
    assert req.headers["content-type"] == "application/json"
    assert len({r.key for r in ingest_receiver.requests}) == 3
    got = ingest_receiver.samples
    assert len(got) == 26
    assert got[0] == {"characteristic": "bore_diameter", "ts": "2026-11-24T08:00:00.000Z",
                      "value": 25.0, "quality": "good", "part_id": None}
    assert got[-1] == {"characteristic": "bore_diameter", "ts": "2026-11-24T08:00:00.000Z",
                       "value": None, "quality": "bad", "part_id": "P-1"}


async def test_429_retry_after_is_honoured(ingest_receiver: IngestReceiver, tmp_path: Path,
                                           buffer: SqliteBuffer) -> None:
    ingest_receiver.script = [Reply(429, {"Retry-After": "2"})]
    buffer.append(make(5))
    up = Uploader(config_for(ingest_receiver.url, tmp_path), buffer)
    assert await up.drain() == 2.0
    assert buffer.depth == 5
    assert await up.drain() is None
    await up.aclose()
    keys = [r.key for r in ingest_receiver.requests]
    assert ingest_receiver.statuses() == [429, 200] and keys[0] == keys[1]
    assert ingest_receiver.sample_count == 5


async def test_503_backs_off_and_keeps_the_batch(ingest_receiver: IngestReceiver, tmp_path: Path,
                                                 buffer: SqliteBuffer) -> None:
    ingest_receiver.script = [Reply(503), Reply(503), Reply(500)]
    buffer.append(make(5))
    up = Uploader(config_for(ingest_receiver.url, tmp_path), buffer)
    delays = [await up.drain() for _ in range(3)]
    assert all(d is not None and 0 < d <= 0.2 for d in delays)
    assert buffer.depth == 5
    assert await up.drain() is None
    await up.aclose()
    assert len({r.key for r in ingest_receiver.requests}) == 1
    assert ingest_receiver.sample_count == 5


async def test_permanent_400_quarantines_the_batch_and_goes_on(
        ingest_receiver: IngestReceiver, tmp_path: Path, buffer: SqliteBuffer) -> None:
    ingest_receiver.script = [Reply(200), Reply(400, body='{"detail":"malformed"}')]
    buffer.append(make(30))
    up = Uploader(config_for(ingest_receiver.url, tmp_path), buffer)
    assert await up.drain() is None
    await up.aclose()
    assert ingest_receiver.statuses() == [200, 400, 200]
    assert buffer.depth == 0 and buffer.quarantined == 10
    assert up.stats.batches_quarantined == 1
    assert ingest_receiver.sample_count == 20


async def test_422_naming_a_sample_quarantines_only_that_sample(
        ingest_receiver: IngestReceiver, tmp_path: Path, buffer: SqliteBuffer) -> None:
    ingest_receiver.reject_characteristic = "unknown_thing"
    buffer.append(make(4))
    buffer.append([Sample("unknown_thing", T0, 1.0, "good", None)])
    buffer.append(make(4, start=4))
    buffer.append([Sample("unknown_thing", T0, 2.0, "good", None)])
    buffer.append(make(6, start=8))
    up = Uploader(config_for(ingest_receiver.url, tmp_path), buffer)
    assert await up.drain() is None
    await up.aclose()
    assert buffer.depth == 0 and buffer.quarantined == 2
    assert sorted(s["ts"] for s in ingest_receiver.samples) == sorted(
        {s["ts"] for s in ingest_receiver.samples})
    assert ingest_receiver.sample_count == 14
    assert 422 in ingest_receiver.statuses()


async def test_413_splits_the_batch(ingest_receiver: IngestReceiver, tmp_path: Path,
                                    buffer: SqliteBuffer) -> None:
    ingest_receiver.max_batch = 3
    buffer.append(make(10))
    up = Uploader(config_for(ingest_receiver.url, tmp_path), buffer)
    assert await up.drain() is None
    await up.aclose()
    assert ingest_receiver.sample_count == 10 and buffer.depth == 0 and buffer.quarantined == 0
    assert up.batch_size <= 3


async def test_connection_dropped_after_store_is_delivered_once(
        ingest_receiver: IngestReceiver, tmp_path: Path, buffer: SqliteBuffer) -> None:
    ingest_receiver.script = [Reply(200, store=True, drop=True)]
    buffer.append(make(10))
    up = Uploader(config_for(ingest_receiver.url, tmp_path), buffer)
    assert await up.drain() is not None  # no answer: the agent cannot know; it retries
    assert await up.drain() is None
    await up.aclose()
    assert ingest_receiver.statuses() == [None, 200]
    assert ingest_receiver.sample_count == 10  # stored once, thanks to the Idempotency-Key


async def test_server_down_then_back(ingest_receiver: IngestReceiver, tmp_path: Path,
                                     buffer: SqliteBuffer) -> None:
    ingest_receiver.stop()
    buffer.append(make(30))
    up = Uploader(config_for(ingest_receiver.url, tmp_path), buffer)
    assert await up.drain() is not None
    assert buffer.depth == 30 and up.stats.last_error is not None
    ingest_receiver.start()
    assert await up.drain() is None
    await up.aclose()
    assert ingest_receiver.sample_count == 30 and buffer.depth == 0


async def test_wrong_key_keeps_samples(tmp_path: Path, buffer: SqliteBuffer) -> None:
    receiver = IngestReceiver(api_key="the-right-key").start()
    try:
        buffer.append(make(3))
        up = Uploader(config_for(receiver.url, tmp_path), buffer)
        assert await up.drain() == 0.2  # retried slowly, never quarantined
        await up.aclose()
        assert buffer.depth == 3 and buffer.quarantined == 0
        assert "check server.api_key" in (up.stats.last_error or "")
    finally:
        receiver.stop()


async def test_without_gzip(ingest_receiver: IngestReceiver, tmp_path: Path,
                            buffer: SqliteBuffer) -> None:
    buffer.append(make(3))
    up = Uploader(config_for(ingest_receiver.url, tmp_path, gzip=False), buffer)
    await up.drain()
    await up.aclose()
    assert "content-encoding" not in ingest_receiver.requests[0].headers
    assert ingest_receiver.sample_count == 3


def test_retry_after_forms() -> None:
    assert retry_after_seconds("7") == 7.0
    now = time.time()
    http_date = datetime.fromtimestamp(now + 30, UTC).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert 28 <= (retry_after_seconds(http_date, now) or 0) <= 31
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


def test_backoff_grows_to_the_cap_with_jitter() -> None:
    top = Backoff(1.0, 8.0, rng=lambda: 1.0)
    assert [top.next_delay() for _ in range(6)] == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]
    bottom = Backoff(1.0, 8.0, rng=lambda: 0.0)
    assert [bottom.next_delay() for _ in range(3)] == [0.5, 0.5, 0.5]



class FailingBuffer(SqliteBuffer):
    """Fails the way a full disk used to make it: forming the first batches, acknowledging one."""

    def __init__(self, path: Path, next_batch_failures: int, ack_failures: int) -> None:
        super().__init__(path, 10_000)
        self.next_batch_failures = next_batch_failures
        self.ack_failures = ack_failures

    def next_batch(self, max_samples: int, exclude: str | None = None,  # type: ignore[override]
                   load: bool = True):
        if self.next_batch_failures:
            self.next_batch_failures -= 1
            raise sqlite3.OperationalError("database or disk is full")
        return super().next_batch(max_samples, exclude, load)

    def ack(self, key: str) -> int:
        if self.ack_failures:
            self.ack_failures -= 1
            raise sqlite3.OperationalError("disk I/O error")
        return super().ack(key)


async def test_uploader_survives_buffer_errors(ingest_receiver: IngestReceiver,
                                               tmp_path: Path) -> None:
    buffer = FailingBuffer(tmp_path / "failing.sqlite", next_batch_failures=3, ack_failures=1)
    buffer.append(make(35))
    up = Uploader(config_for(ingest_receiver.url, tmp_path), buffer)
    stop = asyncio.Event()
    task = asyncio.create_task(up.run(stop))
    deadline = time.monotonic() + 20
    while buffer.depth and time.monotonic() < deadline and not task.done():
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(task, 10)  # ended because it was stopped, not by an exception
    await up.aclose()
    assert buffer.depth == 0
    assert up.stats.buffer_errors == 4
    # the batch whose acknowledgement failed was resent under its key and stored once
    assert ingest_receiver.sample_count == 35
    keys = [r.key for r in ingest_receiver.requests]
    assert len(keys) == len(set(keys)) + 1
