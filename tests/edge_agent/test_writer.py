"""The buffer writer when the buffer cannot be written: a bounded backlog, and every sample either
written or counted as dropped."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from edge_agent import writer as writer_module
from edge_agent.buffer import MemoryBuffer
from edge_agent.sources.base import Sample
from edge_agent.writer import BufferWriter

T0 = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)


def samples(n: int, start: int = 0) -> list[Sample]:
    return [Sample("x", T0 + timedelta(milliseconds=i), float(i), "good", None)
            for i in range(start, start + n)]


class FlakyBuffer(MemoryBuffer):
    """Raises the way SQLite does on a dead disk while `broken` is set."""

    def __init__(self) -> None:
        super().__init__(1_000_000)
        self.broken = True
        self.attempts = 0

    def append(self, samples: Sequence[Sample]) -> None:
        self.attempts += 1
        if self.broken:
            raise sqlite3.OperationalError("disk I/O error")
        super().append(samples)


@pytest.fixture(autouse=True)
def no_retry_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(writer_module, "RETRY_S", 0.0)


async def test_backlog_is_bounded_and_what_is_shed_is_counted() -> None:
    buf = FlakyBuffer()
    w = BufferWriter(buf, max_pending=100)
    put = 0
    for _ in range(10):
        w.put(samples(30, start=put))
        put += 30
        assert w.pending <= 100
        assert not await w.commit()
    assert w.pending == 100 and w.shed == put - 100
    assert buf.dropped == w.shed  # reported to the buffer, so to the heartbeat
    buf.broken = False
    assert await w.commit()
    assert w.pending == 0 and w.failed_commits == 0
    assert buf.depth + buf.dropped == put
    batch = buf.next_batch(1000)
    assert batch is not None
    # the newest were kept, in order
    assert [s.value for s in batch.samples] == [float(i) for i in range(put - 100, put)]


async def test_run_keeps_retrying_until_the_buffer_works() -> None:
    buf = FlakyBuffer()
    w = BufferWriter(buf, max_pending=1000)
    stop = asyncio.Event()
    task = asyncio.create_task(w.run(stop))
    w.put(samples(10))
    while buf.attempts < 3:
        await asyncio.sleep(0.01)
    buf.broken = False
    while buf.depth < 10:
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert buf.dropped == 0 and w.shed == 0


async def test_flush_gives_up_on_a_dead_buffer_and_counts_the_rest() -> None:
    buf = FlakyBuffer()
    w = BufferWriter(buf, max_pending=1000)
    w.put(samples(25))
    await asyncio.wait_for(w.flush(attempts=3), 5)  # returns: shutdown is not blocked
    assert buf.attempts == 3
    assert w.pending == 0 and w.shed == 25 and buf.dropped == 25
