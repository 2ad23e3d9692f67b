"""Seeded process models: one noise stream per variable, disturbed by what is registered on it.

Each variable draws from its own generator, seeded from the run's seed and the variable's full
name, so adding a machine or a variable to a line does not change the values of the others.
"""

from __future__ import annotations

import math
import zlib
from collections import deque
from dataclasses import dataclass
from typing import Literal

import numpy as np

from simulators.config import (
    AttributeKind,
    AttributeStreamConfig,
    DisturbanceKind,
    VariableConfig,
)
from simulators.disturbances import ActiveDisturbance, combine

Quality = Literal["good", "bad"]
_BLOCK = 1024
HISTORY = 2000  # recent samples kept per variable, for GET /history


def stream_seed(seed: int, *names: str) -> list[int]:
    """A generator seed unique to (seed, names), stable across Python runs (no hash())."""
    return [seed & 0xFFFFFFFF, *(zlib.crc32(n.encode()) for n in names)]


@dataclass(frozen=True, slots=True)
class Sample:
    index: int
    t: float  # process seconds since start
    value: float | None  # None when the sensor gives no value
    quality: Quality


class VariableProcess:
    """A normal process `mean + sigma * z` plus the disturbances registered on it."""

    def __init__(self, machine: str, config: VariableConfig, seed: int) -> None:
        self.machine = machine
        self.config = config
        self._noise = np.random.default_rng(stream_seed(seed, machine, config.name, "noise"))
        self._spikes = np.random.default_rng(stream_seed(seed, machine, config.name, "spikes"))
        self._block = np.empty(0)
        self._pos = 0
        self.index = 0  # samples produced so far
        self.disturbances: list[ActiveDisturbance] = []
        self.last: Sample | None = None
        self.history: deque[Sample] = deque(maxlen=HISTORY)
        self._last_value: float = config.mean

    @property
    def name(self) -> str:
        return self.config.name

    def add(self, disturbance: ActiveDisturbance) -> None:
        self.disturbances.append(disturbance)

    def _z(self) -> float:
        if self._pos >= len(self._block):
            self._block = self._noise.standard_normal(_BLOCK)
            self._pos = 0
        z = float(self._block[self._pos])
        self._pos += 1
        return z

    def next(self, t: float) -> Sample:
        """Produce the next sample at process time `t`."""
        index = self.index
        z = self._z()  # drawn even when the value is replaced, to keep the stream aligned
        active = [d for d in self.disturbances if d.update(index, t)]
        for d in active:
            if d.spec.kind is DisturbanceKind.STUCK and d.frozen_value is None:
                d.frozen_value = self._last_value
        effect = combine(active, index, self._spikes)
        cfg = self.config
        value: float | None
        if effect.dropout:
            value, quality = None, "bad"
        elif effect.frozen:
            value = next(d.frozen_value for d in active if d.frozen_value is not None)
            quality = "good"
        else:
            value = cfg.mean + cfg.sigma * (effect.offset + effect.scale * z + effect.spike)
            quality = "good"
        if value is not None:
            self._last_value = value
        self.index += 1
        sample = Sample(index=index, t=t, value=value, quality=quality)
        self.last = sample
        self.history.append(sample)
        return sample

    def generate(self, n: int, dt: float | None = None) -> np.ndarray:
        """The next `n` values (NaN where the sensor gave none), one every `dt` process seconds."""
        step = dt if dt is not None else 1.0 / (self.config.rate_hz or 1.0)
        out = np.empty(n)
        for i in range(n):
            t = (self.index) * step
            s = self.next(t)
            out[i] = np.nan if s.value is None else s.value
        return out

@dataclass(frozen=True, slots=True)
class Lot:
    index: int  # lots inspected before this one
    t: float
    count: int  # defectives in the lot, or defects on the inspected units
    size: int  # lot size, or units inspected


class AttributeProcess:
    """Counts per inspected lot: Binomial(lot_size, p) defectives or Poisson(c * n) defects.

    A `shift` of k moves the expected count by k standard deviations of the count, as a mean
    shift does on a variables chart; that is what a p/np/c/u chart's rules must catch.
    """

    def __init__(self, machine: str, config: AttributeStreamConfig, seed: int) -> None:
        self.machine = machine
        self.config = config
        self._rng = np.random.default_rng(stream_seed(seed, machine, config.name, "counts"))
        self.index = 0
        self.disturbances: list[ActiveDisturbance] = []
        self.last: Lot | None = None

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def size(self) -> int:
        cfg = self.config
        return int(cfg.lot_size if cfg.kind is AttributeKind.DEFECTIVES else cfg.units_inspected)

    def add(self, disturbance: ActiveDisturbance) -> None:
        self.disturbances.append(disturbance)

    def next(self, t: float) -> Lot:
        index = self.index
        k = 0.0
        for d in self.disturbances:
            if d.update(index, t):
                k += d.spec.effective_magnitude
                d.samples_affected += 1
        n, cfg = self.size, self.config
        if cfg.kind is AttributeKind.DEFECTIVES:
            p = float(cfg.p or 0.0)
            p = min(max(p + k * math.sqrt(p * (1 - p) / n), 0.0), 1.0)
            count = int(self._rng.binomial(n, p))
        else:
            lam = float(cfg.defects_per_unit or 0.0) * n
            lam = max(lam + k * math.sqrt(lam), 0.0)
            count = int(self._rng.poisson(lam))
        self.index += 1
        self.last = Lot(index=index, t=t, count=count, size=n)
        return self.last
