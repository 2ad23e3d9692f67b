"""Drives one source: connect, read on its interval, hand samples on, and survive failures.

Each source has its own runner task, so one unreachable device never delays the others. The
runner keeps the source's state (`connecting`, `connected`, `retrying`, `stopped`) and its last
error; it logs the transition to failure once and the recovery once, not every failed poll.
After `errors_before_reconnect` consecutive failed reads (or a failed connect) it closes the
connection and reconnects with exponential backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from edge_agent.sources.base import Sample, Source, SourceError

log = logging.getLogger(__name__)

State = Literal["connecting", "connected", "retrying", "stopped"]


@dataclass
class SourceStatus:
    name: str
    state: State = "connecting"
    last_error: str | None = None
    samples: int = 0
    reads: int = 0
    failures: int = 0


class SourceRunner:
    def __init__(self, source: Source, sink: Callable[[Sequence[Sample]], None]) -> None:
        self.source = source
        self.sink = sink
        self.status = SourceStatus(source.name)
        self._failed_since: float | None = None

    def _fail(self, error: str) -> None:
        self.status.failures += 1
        self.status.last_error = error
        if self.status.state != "retrying":
            log.warning("source %s: %s; retrying in the background", self.source.name, error)
            self._failed_since = time.monotonic()
        self.status.state = "retrying"

    def _ok(self) -> None:
        if self.status.state == "retrying":
            down = time.monotonic() - (self._failed_since or time.monotonic())
            log.info("source %s: recovered after %.1f s", self.source.name, down)
        elif self.status.state == "connecting":
            log.info("source %s: connected", self.source.name)
        self.status.state = "connected"

    async def run(self, stop: asyncio.Event) -> None:
        cfg = self.source.config
        delay = cfg.backoff_initial_s
        try:
            while not stop.is_set():
                try:
                    await self.source.connect()
                except SourceError as exc:
                    self._fail(str(exc))
                except Exception as exc:  # an unexpected error must not kill the other sources
                    log.exception("source %s: unexpected error while connecting",
                                  self.source.name)
                    self._fail(f"{type(exc).__name__}: {exc}")
                else:
                    delay = cfg.backoff_initial_s
                    await self._poll(stop)
                await self._close()
                if stop.is_set():
                    break
                await _sleep_or_stop(stop, delay)
                delay = min(delay * 2, cfg.backoff_max_s)
        finally:
            await self._close()
            self.status.state = "stopped"

    async def _close(self) -> None:
        # A connection that fails to close must not end the runner (the agent treats a runner
        # that ends while it runs as a dead agent and exits so that it is restarted).
        try:
            await self.source.close()
        except Exception as exc:
            log.warning("source %s: error while closing the connection: %s: %s",
                        self.source.name, type(exc).__name__, exc)

    async def _poll(self, stop: asyncio.Event) -> None:
        """Read until stopped or until reads have failed too often in a row."""
        cfg = self.source.config
        consecutive = 0
        next_tick = time.monotonic()
        first = True
        while not stop.is_set():
            if not self.source.self_paced:
                now = time.monotonic()
                if next_tick > now:
                    await _sleep_or_stop(stop, next_tick - now)
                    if stop.is_set():
                        return
                # Keep a fixed cadence; after a stall, skip the missed ticks instead of bursting.
                next_tick = max(next_tick + cfg.interval_s, time.monotonic())
            try:
                # the source says how long one read may take (Modbus: every retry included)
                timeout = None if self.source.self_paced else self.source.read_timeout_s
                samples = await asyncio.wait_for(self.source.read(), timeout)
            except (SourceError, TimeoutError) as exc:
                consecutive += 1
                self._fail(str(exc) or "read timed out")
                if consecutive >= cfg.errors_before_reconnect:
                    return
                continue
            except Exception as exc:
                log.exception("source %s: unexpected error while reading", self.source.name)
                self._fail(f"{type(exc).__name__}: {exc}")
                return
            consecutive = 0
            self.status.reads += 1
            if first or self.status.state != "connected":
                self._ok()
                first = False
            if samples:
                self.status.samples += len(samples)
                self.sink(samples)


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
