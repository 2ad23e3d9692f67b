"""The agent: sources feed the buffer, the uploader drains it, the heartbeat reports on both."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from edge_agent.buffer import Buffer, open_buffer
from edge_agent.config import AgentConfig
from edge_agent.heartbeat import Heartbeat, heartbeat_body
from edge_agent.runner import SourceRunner
from edge_agent.sources import Sample, create_source
from edge_agent.uploader import Uploader, agent_version

log = logging.getLogger(__name__)


class Agent:
    def __init__(self, config: AgentConfig, buffer: Buffer | None = None) -> None:
        self.config = config
        self.buffer = buffer or open_buffer(config.buffer.path, config.buffer.max_samples,
                                            config.buffer.synchronous)
        self.uploader = Uploader(config, self.buffer)
        self.runners = [SourceRunner(create_source(s), self._store) for s in config.sources]
        self.version = agent_version()
        self.heartbeat = Heartbeat(
            self.uploader.client, config.heartbeat.interval_s,
            lambda: heartbeat_body(config.agent.name, self.version, self.buffer,
                                   [r.status for r in self.runners]),
            settled=lambda: all(r.status.state != "connecting" for r in self.runners))
        self.stop = asyncio.Event()

    def _store(self, samples: Sequence[Sample]) -> None:
        # The buffer write comes first: nothing else happens to a sample before it is on disk.
        self.buffer.append(samples)
        self.uploader.notify()

    async def run(self) -> None:
        log.info("agent %s %s starting: %d source(s), buffer %s holds %d sample(s)",
                 self.config.agent.name, self.version, len(self.runners),
                 self.config.buffer.path, self.buffer.depth)
        tasks = [asyncio.create_task(r.run(self.stop), name=f"source:{r.source.name}")
                 for r in self.runners]
        tasks.append(asyncio.create_task(self.uploader.run(self.stop), name="uploader"))
        tasks.append(asyncio.create_task(self.heartbeat.run(self.stop), name="heartbeat"))
        try:
            await self.stop.wait()
        finally:
            self.stop.set()
            done, pending = await asyncio.wait(tasks, timeout=10)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            for task in done:
                if not task.cancelled() and task.exception() is not None:
                    log.error("task %s failed: %r", task.get_name(), task.exception())
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
