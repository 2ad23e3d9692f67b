"""Each source runs in its own thread with its own event loop.

A source can be busy in ways that do not show as an error: asyncua's pure-Python decoder takes
~8 ms of CPU per 1,000 values of a publish response (`sources/opcua_fast.py` ~1 ms, but the
messages it does not take still go that way; a loaded machine stretches both), a Modbus poll of
many blocks waits on each reply. On a shared event loop that stalls every other device's
polling; in its own thread the interpreter switches between threads every few milliseconds, so
a busy source costs the others CPU, never latency spikes.
Samples cross back to the agent's loop with `call_soon_threadsafe`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence

from edge_agent.runner import SourceRunner
from edge_agent.sources.base import Sample, Source

log = logging.getLogger(__name__)


class SourceThread:
    def __init__(self, source: Source, sink: Callable[[Sequence[Sample]], None],
                 main_loop: asyncio.AbstractEventLoop) -> None:
        self.main_loop = main_loop
        self.sink = sink
        self.runner = SourceRunner(source, self._hand_over)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name=f"source:{source.name}",
                                        daemon=True)

    @property
    def status(self):  # type: ignore[no-untyped-def]
        return self.runner.status

    def _hand_over(self, samples: Sequence[Sample]) -> None:
        try:
            self.main_loop.call_soon_threadsafe(self.sink, samples)
        except RuntimeError:
            # The agent has shut down (its loop is closed) while this source was still busy:
            # these samples were never committed, and there is nothing left to commit them.
            log.debug("source %s: %d sample(s) read after shutdown", self.runner.source.name,
                      len(samples))

    def _main(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._ready.set()
        try:
            await self.runner.run(self._stop)
        except Exception:  # the runner already guards; this is the last line of defence
            log.exception("source thread %s crashed", self.runner.source.name)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10)

    async def stop(self, timeout: float = 10.0) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        await asyncio.to_thread(self._thread.join, timeout)
        if self._thread.is_alive():
            log.warning("source %s did not stop within %.0f s", self.runner.source.name, timeout)
