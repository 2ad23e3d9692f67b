"""The agent: sources feed the buffer, the uploader drains it, the heartbeat reports on both.

The core tasks (the buffer writer, the uploader, the heartbeat and every source's runner) run
until the agent is stopped. If one of them ends before that (a bug, an error nothing handled),
the agent does not run on headless: it logs which task died and why, shuts down as usual (what
is buffered stays buffered) and `run` raises `AgentFailed`, so `spc agent` exits non-zero and
systemd restarts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from edge_agent.buffer import Buffer, open_buffer
from edge_agent.config import AgentConfig
from edge_agent.heartbeat import Heartbeat, heartbeat_body
from edge_agent.runner import SourceStatus
from edge_agent.sources import create_source
from edge_agent.threads import SourceThread
from edge_agent.uploader import Uploader, agent_version
from edge_agent.writer import BufferWriter

log = logging.getLogger(__name__)

SOURCE_CHECK_S = 1.0


class AgentFailed(RuntimeError):
    """A core task of the agent ended while the agent was running."""


class Agent:
    def __init__(self, config: AgentConfig, buffer: Buffer | None = None) -> None:
        self.config = config
        self.buffer = buffer or open_buffer(config.buffer.path, config.buffer.max_samples,
                                            config.buffer.synchronous)
        self.uploader = Uploader(config, self.buffer)
        # The writer's backlog never needs to exceed the buffer's own bound: beyond it the
        # buffer would drop the oldest anyway.
        self.writer = BufferWriter(self.buffer, self.uploader.notify,
                                   max_pending=min(config.buffer.max_samples, 100_000))
        self.sources = [create_source(s) for s in config.sources]
        self.threads: list[SourceThread] = []
        self.version = agent_version()
        self.heartbeat = Heartbeat(
            self.uploader.client, config.heartbeat.interval_s,
            lambda: heartbeat_body(config.agent.name, self.version, self.buffer,
                                   self.statuses()),
            settled=lambda: all(s.state != "connecting" for s in self.statuses()))
        self.stop = asyncio.Event()
        self.failed: str | None = None  # why the agent stopped on its own, if it did

    def statuses(self) -> list[SourceStatus]:
        return [t.status for t in self.threads]

    async def run(self) -> None:
        log.info("agent %s %s starting: %d source(s), buffer %s holds %d sample(s)",
                 self.config.agent.name, self.version, len(self.sources),
                 self.config.buffer.path, self.buffer.depth)
        loop = asyncio.get_running_loop()
        self.threads = [SourceThread(s, self.writer.put, loop) for s in self.sources]
        for thread in self.threads:
            thread.start()
        tasks = []
        # The buffer write comes first: the uploader only ever sees committed samples.
        tasks.append(asyncio.create_task(self.writer.run(self.stop), name="buffer-writer"))
        tasks.append(asyncio.create_task(self.uploader.run(self.stop), name="uploader"))
        tasks.append(asyncio.create_task(self.heartbeat.run(self.stop), name="heartbeat"))
        tasks.append(asyncio.create_task(self._watch_sources(), name="source-watch"))
        stopper = asyncio.create_task(self.stop.wait(), name="stop")
        try:
            await asyncio.wait([stopper, *tasks], return_when=asyncio.FIRST_COMPLETED)
            if not self.stop.is_set():
                self._task_died([t for t in tasks if t.done()])
        finally:
            self.stop.set()
            stopper.cancel()
            # A source thread whose runner has ended has closed its loop; stopping it raises.
            for result in await asyncio.gather(*(t.stop() for t in self.threads),
                                               return_exceptions=True):
                if isinstance(result, Exception):
                    log.debug("stopping a source thread: %r", result)
            done, pending = await asyncio.wait(tasks, timeout=10)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            for task in done:
                if (not task.cancelled() and task.exception() is not None
                        and self.failed is None):
                    log.error("task %s failed: %r", task.get_name(), task.exception())
            await self.writer.flush()
            await self._final_flush()
            await self.uploader.aclose()
            depth = self.buffer.depth
            self.buffer.close()
            log.info("agent stopped; %d sample(s) stay buffered for the next start", depth)
        if self.failed is not None:
            raise AgentFailed(self.failed)

    def _task_died(self, tasks: list[asyncio.Task[None]]) -> None:
        reasons = []
        for task in tasks:
            exc = None if task.cancelled() else task.exception()
            what = ("was cancelled" if task.cancelled() else
                    f"failed: {type(exc).__name__}: {exc}" if exc is not None else
                    "ended")
            reasons.append(f"task {task.get_name()} {what}")
            log.critical("agent task %s %s while the agent was running; stopping the agent so "
                         "that it is restarted", task.get_name(), what, exc_info=exc)
        self.failed = "; ".join(reasons)

    async def _watch_sources(self) -> None:
        """Fails (so the agent stops) if a source's runner has ended while the agent runs."""
        while not self.stop.is_set():
            for thread in self.threads:
                if thread.status.state == "stopped" and not self.stop.is_set():
                    raise RuntimeError(f"the runner of source {thread.status.name} ended")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), SOURCE_CHECK_S)

    async def _final_flush(self) -> None:
        """One last short attempt to deliver; whatever is left is safe in the buffer."""
        try:
            await asyncio.wait_for(self.uploader.drain(), 3)
        except Exception as exc:  # shutting down: report, never raise
            log.debug("final flush incomplete: %r", exc)
