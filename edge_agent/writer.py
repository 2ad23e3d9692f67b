"""Commits samples to the buffer off the event loop, in groups.

A synchronous SQLite commit with `synchronous=FULL` waits for the disk (an fsync, milliseconds on
an SD card); done on the event loop it would stall every source. Here the sources hand samples
over in memory and one task commits whatever has accumulated in a worker thread, so a slow disk
means bigger transactions, not slower polling. A sample is "in the buffer" once its commit has
returned; only then can the uploader see it.

When the buffer cannot be written at all (a disk that even dropping the oldest samples does not
make room on, a read-only remount, I/O errors), the samples wait here, retried every second, but
at most `max_pending` of them: beyond that the oldest are shed and counted as dropped, like the
buffer's own bound, so memory stays bounded and nothing goes missing uncounted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from edge_agent.buffer import Buffer
from edge_agent.sources.base import Sample

log = logging.getLogger(__name__)

RETRY_S = 1.0


class BufferWriter:
    def __init__(self, buffer: Buffer, on_commit: Callable[[], None] = lambda: None,
                 max_pending: int = 100_000) -> None:
        self.buffer = buffer
        self.on_commit = on_commit
        self.max_pending = max(1, max_pending)
        self._pending: list[Sample] = []
        self._wake = asyncio.Event()
        self.commits = 0
        self.failed_commits = 0
        self.shed = 0  # samples dropped here because the buffer could not take them
        self._shed_unreported = 0  # of those, not yet added to the buffer's dropped count
        self._shedding = False

    def put(self, samples: Sequence[Sample]) -> None:
        self._pending.extend(samples)
        self._shed()
        self._wake.set()

    def _shed(self) -> None:
        excess = len(self._pending) - self.max_pending
        if excess <= 0:
            return
        if not self._shedding:  # once per episode of failing writes
            self._shedding = True
            log.error("buffer writes are failing and %d samples are waiting in memory: the "
                      "oldest are dropped (counted) until writes work again", self.max_pending)
        del self._pending[:excess]
        self.shed += excess
        self._shed_unreported += excess

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def run(self, stop: asyncio.Event) -> None:
        while True:
            if not self._pending:
                if stop.is_set():
                    return
                waiter = asyncio.ensure_future(self._wake.wait())
                stopper = asyncio.ensure_future(stop.wait())
                await asyncio.wait([waiter, stopper], return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                stopper.cancel()
                self._wake.clear()
                continue
            await self.commit()

    async def _report_shed(self) -> None:
        # In a thread: the buffer's lock may be held by a long write (making room on a full
        # disk), which must not stall the event loop.
        n, self._shed_unreported = self._shed_unreported, 0
        if n:
            await asyncio.to_thread(self.buffer.note_dropped, n)

    async def commit(self) -> bool:
        """Write what is pending; True if it was written. After a failure the samples stay
        pending (bounded) and this waits a moment before returning."""
        await self._report_shed()
        group, self._pending = self._pending, []
        if not group:
            return True
        try:
            await asyncio.to_thread(self.buffer.append, group)
        except Exception as exc:  # e.g. an I/O error: keep the samples and try again shortly
            self._pending[:0] = group
            self._shed()
            self.failed_commits += 1
            if self.failed_commits == 1 or self.failed_commits % 100 == 0:
                log.error("cannot write %d sample(s) to the buffer (%s); retrying, at most %d "
                          "kept in memory", len(group), exc, self.max_pending)
            await asyncio.sleep(RETRY_S)
            return False
        if self.failed_commits:
            log.info("buffer writes work again after %d failed attempt(s); %d sample(s) were "
                     "dropped meanwhile", self.failed_commits, self.shed)
            self.failed_commits = 0
        self._shedding = False
        self.commits += 1
        self.on_commit()
        return True

    async def flush(self, attempts: int = 3) -> None:
        """Write what is pending before shutdown; what cannot be written after `attempts`
        tries is lost, and counted as dropped (in the count kept in memory, if the buffer cannot
        save it either)."""
        for _ in range(attempts):
            if not self._pending:
                break
            await self.commit()
        if self._pending:
            lost = len(self._pending)
            self._pending = []
            self.shed += lost
            self._shed_unreported += lost
            log.error("%d sample(s) could not be written to the buffer before shutdown; they are "
                      "lost and counted as dropped", lost)
        await self._report_shed()
