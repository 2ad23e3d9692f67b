"""The running line: samples every variable at its rate on a clock and tells the servers.

Protocol servers register as listeners; after each tick they receive the events produced in it,
in process-time order per machine: samples, inspected lots, and (in part mode) each part after
its measurements, so a client triggered by the part counter reads that part's values. Device-level
disturbances (disconnect) are evaluated here and reported through `on_connection`.
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
from simulators.process import AttributeProcess, Lot, Sample, VariableProcess

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Published:
    """A sample of a process variable."""

    machine: str
    variable: str
    sample: Sample
    part_id: str | None = None


@dataclass(frozen=True, slots=True)
class PublishedLot:
    """An inspected lot of an attribute stream."""

    machine: str
    stream: str
    lot: Lot


@dataclass(frozen=True, slots=True)
class PublishedPart:
    """A part completed (part mode), after its measurements were published."""

    machine: str
    count: int  # parts produced so far, this one included
    number: int
    part_id: str
    t: float


Event = Published | PublishedLot | PublishedPart
SampleListener = Callable[[list[Event]], Awaitable[None]]
# (machine or None for the whole device, connected)
ConnectionListener = Callable[[str | None, bool], Awaitable[None]]


class LineSimulation:
    def __init__(
        self, config: LineConfig, seed: int, clock: Clock, rate_hz: float | None = None
    ) -> None:
        self.config = config
        self.seed = seed
        self.clock = clock
        self.rate_override = rate_hz
        self.processes: dict[tuple[str, str], VariableProcess] = {}
        self.attributes: dict[tuple[str, str], AttributeProcess] = {}
        self.parts: dict[str, int] = {}  # part-mode machine -> parts produced
        for machine in config.machines:
            for var in machine.variables:
                self.processes[(machine.name, var.name)] = VariableProcess(
                    machine.name, var, seed
                )
            for stream in machine.attributes:
                self.attributes[(machine.name, stream.name)] = AttributeProcess(
                    machine.name, stream, seed
                )
            if machine.part_mode is not None:
                self.parts[machine.name] = 0
        self.device_disturbances: list[ActiveDisturbance] = []
        self.connected = True
        self.machines_connected = {m.name: True for m in config.machines}
        self.sample_listeners: list[SampleListener] = []
        self.connection_listeners: list[ConnectionListener] = []
        for spec in config.disturbances:
            self.add_disturbance(spec, origin="schedule")

    def rate(self, machine: str, variable: str) -> float:
        """Samples per process second of a variable (parts per second in part mode)."""
        if self.rate_override is not None:
            return self.rate_override
        part_mode = self.config.machine(machine).part_mode
        if part_mode is not None:
            return 1.0 / part_mode.cycle_seconds
        return self.processes[(machine, variable)].config.rate_hz or self.config.sample_rate_hz

    def lot_rate(self, machine: str, stream: str) -> float:
        """Lots per process second: the stream's own rate, else a tenth of the sample rate."""
        own = self.attributes[(machine, stream)].config.rate_hz
        if own is not None:
            return own
        return (self.rate_override or self.config.sample_rate_hz) / 10.0

    def part_period(self, machine: str) -> float:
        part_mode = self.config.machine(machine).part_mode
        assert part_mode is not None
        return 1.0 / self.rate_override if self.rate_override else part_mode.cycle_seconds

    def machine(self, name: str) -> MachineConfig:
        return self.config.machine(name)

    # -- disturbances -------------------------------------------------------------------------

    def add_disturbance(self, spec: DisturbanceSpec, origin: Origin) -> ActiveDisturbance:
        problem = disturbance_target_problem(self.config, spec)
        if problem:
            raise ConfigError(problem)
        now = self.clock.now() if origin == "control" else 0.0
        if spec.kind in DEVICE_KINDS:
            d = ActiveDisturbance(spec, origin, origin_index=self._device_index(spec),
                                  origin_time=now)
            self.device_disturbances.append(d)
            return d
        machine = spec.machine or self.config.machines[0].name
        assert spec.variable is not None
        process: VariableProcess | AttributeProcess
        if (machine, spec.variable) in self.attributes:
            process = self.attributes[(machine, spec.variable)]
        else:
            process = self.processes[(machine, spec.variable)]
        d = ActiveDisturbance(spec, origin, origin_index=process.index, origin_time=now)
        process.add(d)
        return d

    def _device_index(self, spec: DisturbanceSpec) -> int:
        """Samples of a device disturbance count on its machine's first variable (or the line's)."""
        machine = self.config.machine(spec.machine) if spec.machine else self.config.machines[0]
        return self.processes[(machine.name, machine.variables[0].name)].index

    def disturbances(self) -> list[ActiveDisturbance]:
        out = list(self.device_disturbances)
        for p in [*self.processes.values(), *self.attributes.values()]:
            out.extend(p.disturbances)
        return sorted(out, key=lambda d: d.id)

    async def remove_disturbance(self, ident: int) -> ActiveDisturbance | None:
        """Remove one disturbance by id; a removed disconnect reconnects at the next tick."""
        for holder in [self.device_disturbances,
                       *(p.disturbances for p in self.processes.values()),
                       *(a.disturbances for a in self.attributes.values())]:
            for d in holder:
                if d.id == ident:
                    holder.remove(d)
                    return d
        return None

    async def clear_disturbances(self) -> int:
        """Remove every disturbance, scheduled or injected; the device comes back if it was off."""
        count = len(self.disturbances())
        self.device_disturbances.clear()
        for p in [*self.processes.values(), *self.attributes.values()]:
            p.disturbances.clear()
        await self._set_connected(True)
        for machine in self.machines_connected:
            await self._set_machine_connected(machine, True)
        return count

    # -- running --------------------------------------------------------------------------------

    async def _set_connected(self, connected: bool) -> None:
        if connected == self.connected:
            return
        self.connected = connected
        log.info("device %s", "reconnected" if connected else "disconnected")
        for listener in self.connection_listeners:
            await listener(None, connected)

    async def _set_machine_connected(self, machine: str, connected: bool) -> None:
        if connected == self.machines_connected[machine]:
            return
        self.machines_connected[machine] = connected
        log.info("machine %s %s", machine, "reconnected" if connected else "disconnected")
        for listener in self.connection_listeners:
            await listener(machine, connected)

    def due(self, now: float) -> list[Event]:
        """Produce every event due up to process time `now`, in time order per machine."""
        out: list[Event] = []
        for machine in self.config.machines:
            if machine.name in self.parts:
                out.extend(self._parts_due(machine, now))
            else:
                for var in machine.variables:
                    process = self.processes[(machine.name, var.name)]
                    period = 1.0 / self.rate(machine.name, var.name)
                    while process.index * period <= now:
                        sample = process.next(process.index * period)
                        out.append(Published(machine.name, var.name, sample))
            for stream in machine.attributes:
                attr = self.attributes[(machine.name, stream.name)]
                period = 1.0 / self.lot_rate(machine.name, stream.name)
                while attr.index * period <= now:
                    out.append(PublishedLot(machine.name, stream.name,
                                            attr.next(attr.index * period)))
        return out

    def _parts_due(self, machine: MachineConfig, now: float) -> list[Event]:
        assert machine.part_mode is not None
        period = self.part_period(machine.name)
        out: list[Event] = []
        while self.parts[machine.name] * period <= now:
            t = self.parts[machine.name] * period
            number = self.parts[machine.name] + 1
            part_id = f"{machine.part_mode.part_id_prefix}{number}"
            for var in machine.variables:
                sample = self.processes[(machine.name, var.name)].next(t)
                out.append(Published(machine.name, var.name, sample, part_id))
            self.parts[machine.name] = number
            out.append(PublishedPart(machine.name, number, number, part_id, t))
        return out

    def next_due(self) -> float:
        times = [p.index / self.rate(m, v) for (m, v), p in self.processes.items()]
        times += [a.index / self.lot_rate(m, s) for (m, s), a in self.attributes.items()]
        return min(times)

    async def tick(self) -> list[Event]:
        now = self.clock.now()
        device_active = [
            d for d in self.device_disturbances if d.update(self._device_index(d.spec), now)
        ]
        # A disconnect without a machine takes the whole device (both servers) off the network;
        # with a machine, only that machine stops answering, as behind a gateway.
        await self._set_connected(not any(d.spec.machine is None for d in device_active))
        off = {d.spec.machine for d in device_active if d.spec.machine is not None}
        for machine in self.machines_connected:
            await self._set_machine_connected(machine, machine not in off)
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

    def _lot_state(self, attr: AttributeProcess) -> dict[str, object]:
        last = attr.last
        return {
            "kind": attr.config.kind.value,
            "lot": attr.index,
            "count": None if last is None else last.count,
            "size": attr.size,
            "ts": None if last is None else self.clock.timestamp(last.t).isoformat(),
        }

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
            entry: dict[str, object] = {
                "name": machine.name,
                "unit_id": self.config.unit_id(machine),
                "connected": self.machines_connected[machine.name],
                "variables": variables,
            }
            if machine.attributes:
                entry["attributes"] = {
                    stream.name: self._lot_state(self.attributes[(machine.name, stream.name)])
                    for stream in machine.attributes
                }
            if machine.part_mode is not None:
                count = self.parts[machine.name]
                entry["part"] = {
                    "count": count,
                    "id": f"{machine.part_mode.part_id_prefix}{count}" if count else None,
                }
            machines.append(entry)
        return {
            "line": self.config.line,
            "seed": self.seed,
            "process_time": self.clock.now(),
            "connected": self.connected,
            "machines": machines,
            "disturbances": [d.describe() for d in self.disturbances()],
        }
