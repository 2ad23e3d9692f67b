"""The running line: samples every variable at its rate on a clock and tells the servers.

Protocol servers register as listeners; after each tick they receive the samples produced in it
(the latest per variable is what a polling client sees). Device-level disturbances (disconnect)
are evaluated here and reported through `on_connection`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from simulators.clock import Clock
from simulators.config import (
    DEVICE_KINDS,
    ConfigError,
    DisturbanceSpec,
    LineConfig,
    MachineConfig,
    disturbance_target_problem,
)
from simulators.disturbances import ActiveDisturbance, Origin
from simulators.process import Sample, VariableProcess

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Published:
    machine: str
    variable: str
    sample: Sample


SampleListener = Callable[[list[Published]], Awaitable[None]]
ConnectionListener = Callable[[bool], Awaitable[None]]


class LineSimulation:
    def __init__(
        self, config: LineConfig, seed: int, clock: Clock, rate_hz: float | None = None
    ) -> None:
        self.config = config
        self.seed = seed
        self.clock = clock
        self.rate_override = rate_hz
        self.processes: dict[tuple[str, str], VariableProcess] = {}
        for machine in config.machines:
            for var in machine.variables:
                self.processes[(machine.name, var.name)] = VariableProcess(
                    machine.name, var, seed
                )
        self.device_disturbances: list[ActiveDisturbance] = []
        self.connected = True
        self.sample_listeners: list[SampleListener] = []
        self.connection_listeners: list[ConnectionListener] = []
        self.ticks = 0
        for spec in config.disturbances:
            self.add_disturbance(spec, origin="schedule")

    def rate(self, machine: str, variable: str) -> float:
        if self.rate_override is not None:
            return self.rate_override
        return self.processes[(machine, variable)].config.rate_hz or self.config.sample_rate_hz

    def machine(self, name: str) -> MachineConfig:
        return self.config.machine(name)

    # -- disturbances -------------------------------------------------------------------------

    def add_disturbance(self, spec: DisturbanceSpec, origin: Origin) -> ActiveDisturbance:
        problem = disturbance_target_problem(self.config, spec)
        if problem:
            raise ConfigError(problem)
        now = self.clock.now() if origin == "control" else 0.0
        if spec.kind in DEVICE_KINDS:
            d = ActiveDisturbance(spec, origin, origin_index=self.ticks, origin_time=now)
            self.device_disturbances.append(d)
            return d
        machine = spec.machine or self.config.machines[0].name
        assert spec.variable is not None
        process = self.processes[(machine, spec.variable)]
        d = ActiveDisturbance(spec, origin, origin_index=process.index, origin_time=now)
        process.add(d)
        return d

    def disturbances(self) -> list[ActiveDisturbance]:
        out = list(self.device_disturbances)
        for p in self.processes.values():
            out.extend(p.disturbances)
        return sorted(out, key=lambda d: d.id)

    async def clear_disturbances(self) -> int:
        """Remove every disturbance, scheduled or injected; the device comes back if it was off."""
        count = len(self.disturbances())
        self.device_disturbances.clear()
        for p in self.processes.values():
            p.disturbances.clear()
        await self._set_connected(True)
        return count

    # -- running --------------------------------------------------------------------------------

    async def _set_connected(self, connected: bool) -> None:
        if connected == self.connected:
            return
        self.connected = connected
        log.info("device %s", "reconnected" if connected else "disconnected")
        for listener in self.connection_listeners:
            await listener(connected)

    def due(self, now: float) -> list[Published]:
        """Produce every sample due up to process time `now`, in time order per variable."""
        out: list[Published] = []
        for (machine, variable), process in self.processes.items():
            period = 1.0 / self.rate(machine, variable)
            while process.index * period <= now:
                out.append(Published(machine, variable, process.next(process.index * period)))
        return out

    def next_due(self) -> float:
        return min(
            p.index / self.rate(m, v) for (m, v), p in self.processes.items()
        )

    async def tick(self) -> list[Published]:
        now = self.clock.now()
        device_active = [d for d in self.device_disturbances if d.update(self.ticks, now)]
        self.ticks += 1
        await self._set_connected(not device_active)
        produced = self.due(now)
        if produced:
            for listener in self.sample_listeners:
                await listener(produced)
        return produced

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.tick()
            with contextlib.suppress(TimeoutError):
                # Wake for the next sample, or sooner to notice a timed device disturbance.
                await asyncio.wait_for(stop.wait(), timeout=self._real_delay())

    def _real_delay(self) -> float:
        target = self.next_due()
        now = self.clock.now()
        speed = getattr(self.clock, "speed", 1.0) or 1.0
        return min(max((target - now) / speed, 0.0), 0.25)

    # -- reporting ------------------------------------------------------------------------------

    def state(self) -> dict[str, object]:
        machines = []
        for machine in self.config.machines:
            variables = {}
            for var in machine.variables:
                p = self.processes[(machine.name, var.name)]
                last = p.last
                variables[var.name] = {
                    "unit": var.unit,
                    "value": None if last is None else last.value,
                    "quality": None if last is None else last.quality,
                    "index": p.index,
                    "ts": None if last is None else self.clock.timestamp(last.t).isoformat(),
                    "rate_hz": self.rate(machine.name, var.name),
                }
            machines.append(
                {
                    "name": machine.name,
                    "unit_id": self.config.unit_id(machine),
                    "variables": variables,
                }
            )
        return {
            "line": self.config.line,
            "seed": self.seed,
            "process_time": self.clock.now(),
            "connected": self.connected,
            "machines": machines,
            "disturbances": [d.describe() for d in self.disturbances()],
        }
