"""Background jobs that run one round every `interval_s` for the life of the server.

A round that fails because the database is unreachable is logged and retried next round: the
server keeps serving what it can (health says the database is down) instead of losing its jobs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import asyncpg

DATABASE_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)


class Periodic:
    def __init__(self, name: str, round_: Callable[[], Awaitable[object]], interval_s: float,
                 log: logging.Logger) -> None:
        self.name, self.round, self.interval_s, self.log = name, round_, interval_s, log
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            try:
                await self.round()
            except DATABASE_ERRORS as exc:
                self.log.warning("%s: database unavailable (%s); retrying next round",
                                 self.name, exc)
            await asyncio.sleep(self.interval_s)
