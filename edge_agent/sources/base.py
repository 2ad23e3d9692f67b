"""The one small async interface every edge source implements, and the registry of source kinds.

A source module (one per protocol) declares a pydantic config model whose `kind` is a Literal, and
a `Source` subclass, and registers both with `@register`. The agent never imports a protocol
library directly: it looks the kind up here. This mirrors Telegraf's `plugins/inputs/<name>`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

Quality = Literal["good", "uncertain", "bad"]


@dataclass(frozen=True, slots=True)
class Sample:
    """One measurement of one characteristic, as it travels from a source to the server."""

    characteristic: str
    ts: datetime
    value: float | None
    quality: Quality = "good"
    part_id: str | None = None

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
        number: float | None
        if quality == "bad" or value is None:
            number, quality = None, "bad"
        else:
            try:
                number = float(value)
            except (TypeError, ValueError):
                number, quality = None, "bad"
            else:
                if not math.isfinite(number):
                    number, quality = None, "bad"
        return Sample(characteristic, ts or datetime.now(UTC), number, quality, part_id)


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
