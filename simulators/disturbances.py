"""Disturbances: when each one is active, and what it does to a sample.

A sample is built as `mean + offset + scale * sigma * z` (z the variable's own standard normal
noise), then spikes, a frozen value or a dropout may replace it. Each disturbance contributes to
one of those parts, so several can act at once and the underlying noise stream stays the same
whatever is injected (a disturbed run and an undisturbed run with the same seed differ only by the
disturbance).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from simulators.config import DisturbanceKind, DisturbanceSpec

Origin = Literal["schedule", "control"]
_ids = itertools.count(1)


@dataclass
class ActiveDisturbance:
    """A disturbance registered on a variable (or on the device), with its life cycle.

    `origin_index`/`origin_time` are the variable's sample count and the process time when it was
    registered: `after_samples`/`after_seconds` count from there.
    """

    spec: DisturbanceSpec
    origin: Origin
    origin_index: int = 0
    origin_time: float = 0.0
    id: int = field(default_factory=lambda: next(_ids))
    started_index: int | None = None
    started_time: float | None = None
    finished: bool = False
    samples_affected: int = 0
    frozen_value: float | None = None

    def update(self, index: int, t: float) -> bool:
        """Advance the life cycle to sample `index` at process time `t`; True while active."""
        if self.finished:
            return False
        spec = self.spec
        if self.started_index is None:
            if spec.after_samples is not None and index < self.origin_index + spec.after_samples:
                return False
            if spec.after_seconds is not None and t < self.origin_time + spec.after_seconds:
                return False
            self.started_index, self.started_time = index, t
        assert self.started_time is not None
        if (spec.for_samples is not None and index - self.started_index >= spec.for_samples) or (
            spec.for_seconds is not None and t - self.started_time >= spec.for_seconds
        ):
            self.finished = True
            return False
        return True

    @property
    def active(self) -> bool:
        return self.started_index is not None and not self.finished

    def describe(self) -> dict[str, object]:
        state = "finished" if self.finished else "active" if self.active else "pending"
        return {
            "id": self.id,
            "origin": self.origin,
            "state": state,
            "samples_affected": self.samples_affected,
            **self.spec.model_dump(exclude_none=True, mode="json"),
        }


@dataclass
class Effect:
    """The combined effect of the active disturbances on one sample."""

    offset: float = 0.0  # in sigma units
    scale: float = 1.0
    spike: float = 0.0  # in sigma units
    frozen: bool = False
    dropout: bool = False


def combine(
    active: list[ActiveDisturbance], index: int, spike_rng: np.random.Generator
) -> Effect:
    """The effect of the disturbances in `active` (already known to be active) on sample `index`."""
    effect = Effect()
    for d in active:
        spec, k = d.spec, index - (d.started_index or 0)
        m = spec.effective_magnitude
        match spec.kind:
            case DisturbanceKind.SHIFT:
                effect.offset += m
            case DisturbanceKind.TREND:
                effect.offset += m * (k + 1)
            case DisturbanceKind.CYCLE:
                # Half-sample phase: a period of 2 samples alternates (+m, -m) rather than
                # sampling the sine at its zeros.
                effect.offset += m * math.sin(2 * math.pi * (k + 0.5) / spec.period)
            case DisturbanceKind.MIXTURE:
                effect.offset += m if k % 2 == 0 else -m
            case DisturbanceKind.VARIANCE | DisturbanceKind.STRATIFICATION:
                effect.scale *= m
            case DisturbanceKind.OUTLIERS:
                # Always draw, so the spike stream does not depend on earlier outcomes.
                u, sign = spike_rng.random(), spike_rng.random()
                if u < spec.probability:
                    effect.spike += m if sign < 0.5 else -m
            case DisturbanceKind.STUCK:
                effect.frozen = True
            case DisturbanceKind.DROPOUT:
                effect.dropout = True
            case DisturbanceKind.DISCONNECT:
                pass  # acts on the device, not on values
        d.samples_affected += 1
    return effect
