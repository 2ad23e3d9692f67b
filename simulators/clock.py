"""Process time: the real clock, or a virtual one that runs faster than real time.

The simulator asks the clock for process time (`now`, seconds since start), wall-clock
timestamps for samples (`timestamp`), and how long to really sleep until a process time
(`sleep_until`). A virtual clock with `speed=60` plays a minute of process per real second, so
tests can run minutes of process in seconds; `advance` steps it by hand in in-process tests.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta


class Clock:
    """Real time: process seconds are real seconds since the clock was made."""

    def __init__(self) -> None:
        self._start_mono = time.monotonic()
        self._start_wall = datetime.now(UTC)

    def now(self) -> float:
        return time.monotonic() - self._start_mono

    def timestamp(self, process_seconds: float) -> datetime:
        return self._start_wall + timedelta(seconds=process_seconds)

    async def sleep_until(self, process_seconds: float) -> None:
        delay = process_seconds - self.now()
        await asyncio.sleep(max(delay, 0.0))


class VirtualClock(Clock):
    """Process time runs `speed` times faster than real time from a chosen start instant.

    With `speed=0` the clock only moves when `advance` is called (for in-process tests).
    """

    def __init__(self, speed: float = 1.0, start: datetime | None = None) -> None:
        super().__init__()
        if speed < 0:
            raise ValueError("speed must be >= 0")
        self.speed = speed
        self._start_wall = start or datetime(2026, 1, 1, tzinfo=UTC)
        self._manual = 0.0

    def now(self) -> float:
        return (time.monotonic() - self._start_mono) * self.speed + self._manual

    def advance(self, seconds: float) -> None:
        self._manual += seconds

    async def sleep_until(self, process_seconds: float) -> None:
        if self.speed == 0:
            # A stepped clock never reaches the target by itself: yield and let the caller step.
            await asyncio.sleep(0.01)
            return
        delay = (process_seconds - self.now()) / self.speed
        await asyncio.sleep(max(delay, 0.0))
