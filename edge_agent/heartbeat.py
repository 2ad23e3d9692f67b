"""Periodic heartbeat so the server can raise "source down" and "agent silent" alarms."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence

import httpx

from edge_agent.buffer import Buffer
from edge_agent.runner import SourceStatus

log = logging.getLogger(__name__)

HEARTBEAT_PATH = "/api/v1/agents/heartbeat"


def heartbeat_body(agent: str, version: str, buffer: Buffer,
                   statuses: Sequence[SourceStatus]) -> dict[str, object]:
    return {
        "agent": agent,
        "version": version,
        "buffer_depth": buffer.depth,
        "dropped": buffer.dropped,
        "sources": [{"name": s.name, "state": s.state,
                     "last_error": None if s.last_error is None else s.last_error[:2000]}
                    for s in statuses],
    }


class Heartbeat:
    def __init__(self, client: httpx.AsyncClient, interval_s: float,
                 body: Callable[[], dict[str, object]],
                 settled: Callable[[], bool] = lambda: True) -> None:
        self.client = client
        self.settled = settled
        self.interval_s = interval_s
        self.body = body
        self.sent = 0
        self._failing = False

    async def beat(self) -> bool:
        try:
            response = await self.client.post(HEARTBEAT_PATH, json=self.body())
            ok = response.is_success
            reason = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            ok, reason = False, f"{type(exc).__name__}: {exc}"
        if ok:
            self.sent += 1
            if self._failing:
                log.info("heartbeat delivered again")
        elif not self._failing:
            log.warning("heartbeat not delivered (%s); will keep trying", reason)
        self._failing = not ok
        return ok

    async def run(self, stop: asyncio.Event, settle_s: float = 5.0) -> None:
        # The first beat waits (briefly) for every source's first connect attempt, so a normal
        # start does not report sources as down to the server.
        deadline = asyncio.get_running_loop().time() + settle_s
        while not self.settled() and asyncio.get_running_loop().time() < deadline:
            if stop.is_set():
                return
            await asyncio.sleep(0.05)
        while not stop.is_set():
            await self.beat()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.interval_s)
