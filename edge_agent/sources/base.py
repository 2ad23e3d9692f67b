"""The one small async interface every edge source implements, and the registry of source kinds.

A source module (one per protocol) declares a pydantic config model whose `kind` is a Literal, and
a `Source` subclass, and registers both with `@register`. The agent never imports a protocol
library directly: it looks the kind up here. This mirrors Telegraf's `plugins/inputs/<name>`.
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from datetime import UTC, datetime, timedelta
from operator import itemgetter
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

Quality = Literal["good", "uncertain", "bad"]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_new_tuple = tuple.__new__
_isfinite = math.isfinite


def to_us(ts: datetime) -> int:
    """Microseconds since the Unix epoch; a naive datetime is taken as UTC."""
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return (ts - _EPOCH) // _US


class Sample(tuple):  # type: ignore[type-arg]
    """One measurement of one characteristic, as it travels from a source to the server.

    An immutable tuple `(characteristic, ts_us, value, quality, part_id)`, the time in
    microseconds since the Unix epoch (UTC): the very row the buffer stores, so that the
    20,000 samples a second of one agent cost no per-sample object set-up or conversion on
    their way to SQLite (a frozen dataclass, a datetime each and a row built from them were a
    fifth of the agent's CPU). `ts` gives the time as an aware UTC datetime.
    `Sample(characteristic, ts, value, quality, part_id)` takes a datetime; the contract (a bad
    sample has no value, the value is a finite float) is kept by `Sample.of` and by the
    sources that build rows with `Sample.row`.
    """

    __slots__ = ()

    def __new__(cls, characteristic: str, ts: datetime, value: float | None,
                quality: Quality = "good", part_id: str | None = None) -> Sample:
        return _new_tuple(cls, (characteristic, to_us(ts), value, quality, part_id))

    @classmethod
    def row(cls, characteristic: str, ts_us: int, value: float | None,
            quality: Quality = "good", part_id: str | None = None) -> Sample:
        """A sample from its stored form, as is (no checks: the caller keeps the contract)."""
        return _new_tuple(cls, (characteristic, ts_us, value, quality, part_id))

    characteristic: str = property(itemgetter(0))  # type: ignore[assignment]
    ts_us: int = property(itemgetter(1))  # type: ignore[assignment]
    value: float | None = property(itemgetter(2))  # type: ignore[assignment]
    quality: Quality = property(itemgetter(3))  # type: ignore[assignment]
    part_id: str | None = property(itemgetter(4))  # type: ignore[assignment]

    @property
    def ts(self) -> datetime:
        return _EPOCH + timedelta(microseconds=self[1])

    def __repr__(self) -> str:
        return (f"Sample({self[0]!r}, {self.ts.isoformat()}, {self[2]!r}, {self[3]!r}, "
                f"{self[4]!r})")

    def __reduce__(self) -> tuple[Any, ...]:
        return (_new_tuple, (Sample, tuple(self)))

    @staticmethod
    def of(
        characteristic: str,
        value: Any,
        quality: Quality,
        ts: datetime | None = None,
        part_id: str | None = None,
    ) -> Sample:
        """Build a sample, enforcing the contract: a bad sample never carries a value, and a
        value that JSON cannot carry (NaN, inf, non-numeric) makes the sample bad."""
        return checked(characteristic, value, quality,
                       time.time_ns() // 1000 if ts is None else to_us(ts), part_id)


def checked(characteristic: str, value: Any, quality: Quality, ts_us: int,
            part_id: str | None = None) -> Sample:
    """`Sample.of` with the time in microseconds since the epoch."""
    if quality == "bad" or value is None:
        return _new_tuple(Sample, (characteristic, ts_us, None, "bad", part_id))
    try:
        number = float(value)
    except (TypeError, ValueError):
        return _new_tuple(Sample, (characteristic, ts_us, None, "bad", part_id))
    if not _isfinite(number):
        return _new_tuple(Sample, (characteristic, ts_us, None, "bad", part_id))
    return _new_tuple(Sample, (characteristic, ts_us, number, quality, part_id))


class StrictModel(BaseModel):
    """Base of every config model: unknown keys are errors (they are nearly always typos)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceConfig(StrictModel):
    """Fields shared by every source kind; each kind subclasses this with `kind: Literal[...]`."""

    name: str = Field(min_length=1, description="unique name of this source, used in logs")
    interval_s: float = Field(1.0, gt=0, description="polling interval in seconds")
    timeout_s: float = Field(3.0, gt=0, description="timeout of one request in seconds")
    errors_before_reconnect: int = Field(
        3, ge=1, description="consecutive failed reads after which the connection is rebuilt"
    )
    backoff_initial_s: float = Field(0.5, gt=0)
    backoff_max_s: float = Field(30.0, gt=0)


class SourceError(Exception):
    """A source failed in a way that is about the device or the link, not a programming error."""


class Source(ABC):
    """A connection to one device. Not thread-safe; driven by one `SourceRunner`.

    `read()` returns the samples of one poll. A source whose `self_paced` is True (subscriptions,
    triggers) instead blocks inside `read()` until samples arrive or a short health-check period
    elapses, and the runner calls it back to back.
    """

    kind: ClassVar[str]
    config_model: ClassVar[type[SourceConfig]]
    self_paced: bool = False

    def __init__(self, config: SourceConfig) -> None:
        self.config = config

    @property
    def name(self) -> str:
        return self.config.name

    @abstractmethod
    async def connect(self) -> None:
        """Open the connection and resolve whatever must be resolved per connection."""

    @abstractmethod
    async def read(self) -> list[Sample]:
        """One poll (or, when self-paced, the next arrivals). Raise on a link failure."""

    @abstractmethod
    async def close(self) -> None:
        """Release the connection. Must not raise, and must be safe to call twice."""

    @property
    def read_timeout_s(self) -> float:
        """How long one `read()` of a polled source may take before the runner gives it up
        (a guard against a hung read; the source's own timeouts normally end it first)."""
        return self.config.timeout_s * 4 + 1

    def tag_rows(self) -> list[tuple[str, str, str]]:
        """(address, characteristic, unit) for each configured tag, for `check-config`."""
        return []


SOURCE_KINDS: dict[str, type[Source]] = {}


def register(cls: type[Source]) -> type[Source]:
    """Class decorator: make a source kind available by the name in its config's `kind`."""
    if cls.kind in SOURCE_KINDS:
        raise ValueError(f"source kind {cls.kind!r} registered twice")
    SOURCE_KINDS[cls.kind] = cls
    return cls


def create_source(config: SourceConfig) -> Source:
    return SOURCE_KINDS[config.kind](config)  # type: ignore[attr-defined]
