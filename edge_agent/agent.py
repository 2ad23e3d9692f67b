"""The agent: sources feed the buffer, the uploader drains it, the heartbeat reports on both."""

from __future__ import annotations

import asyncio
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


class Agent:
    def __init__(self, config: AgentConfig, buffer: Buffer | None = None) -> None:
        self.config = config
        self.buffer = buffer or open_buffer(config.buffer.path, config.buffer.max_samples,
                                            config.buffer.synchronous)
        self.uploader = Uploader(config, self.buffer)
        self.writer = BufferWriter(self.buffer, self.uploader.notify)
        self.sources = [create_source(s) for s in config.sources]
        self.threads: list[SourceThread] = []
        self.version = agent_version()
        self.heartbeat = Heartbeat(
            self.uploader.client, config.heartbeat.interval_s,
            lambda: heartbeat_body(config.agent.name, self.version, self.buffer,
                                   self.statuses()),
            settled=lambda: all(s.state != "connecting" for s in self.statuses()))
        self.stop = asyncio.Event()

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
        try:
            await self.stop.wait()
        finally:
            self.stop.set()
            await asyncio.gather(*(t.stop() for t in self.threads))
            done, pending = await asyncio.wait(tasks, timeout=10)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    log.error("task %s failed: %r", task.get_name(), task.exception())
            await self.writer.flush()
            await self._final_flush()
            await self.uploader.aclose()
            depth = self.buffer.depth
            self.buffer.close()
            log.info("agent stopped; %d sample(s) stay buffered for the next start", depth)

    async def _final_flush(self) -> None:
        """One last short attempt to deliver; whatever is left is safe in the buffer."""
        try:
            await asyncio.wait_for(self.uploader.drain(), 3)
        except Exception as exc:  # shutting down: report, never raise
            log.debug("final flush incomplete: %r", exc)
