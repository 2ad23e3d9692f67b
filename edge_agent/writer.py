"""Commits samples to the buffer off the event loop, in groups.

A synchronous SQLite commit with `synchronous=FULL` waits for the disk (an fsync, milliseconds on
an SD card); done on the event loop it would stall every source. Here the sources hand samples
over in memory and one task commits whatever has accumulated in a worker thread, so a slow disk
means bigger transactions, not slower polling. A sample is "in the buffer" once its commit has
returned; only then can the uploader see it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from edge_agent.buffer import Buffer
from edge_agent.sources.base import Sample

log = logging.getLogger(__name__)


class BufferWriter:
    def __init__(self, buffer: Buffer, on_commit: Callable[[], None] = lambda: None) -> None:
        self.buffer = buffer
        self.on_commit = on_commit
        self._pending: list[Sample] = []
        self._wake = asyncio.Event()
        self.commits = 0
        self.failed_commits = 0

    def put(self, samples: Sequence[Sample]) -> None:
        self._pending.extend(samples)
        self._wake.set()

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

    async def commit(self) -> None:
        group, self._pending = self._pending, []
        try:
            await asyncio.to_thread(self.buffer.append, group)
        except Exception as exc:  # e.g. disk full: keep the samples and try again shortly
            self._pending[:0] = group
            self.failed_commits += 1
            if self.failed_commits == 1 or self.failed_commits % 100 == 0:
                log.error("cannot write %d sample(s) to the buffer (%s); retrying",
                          len(group), exc)
            await asyncio.sleep(1.0)
            return
        if self.failed_commits:
            log.info("buffer writes work again")
            self.failed_commits = 0
        self.commits += 1
        self.on_commit()

    async def flush(self) -> None:
        while self._pending:
            await self.commit()
