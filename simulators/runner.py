"""Wires a line simulation to its servers (OPC UA, Modbus TCP/RTU, control HTTP) and runs it."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from simulators.clock import Clock, VirtualClock
from simulators.config import LineConfig
from simulators.control import ControlServer
from simulators.line import LineSimulation
from simulators.modbus_server import ModbusLine
from simulators.opcua_security import OpcUaSecurity
from simulators.opcua_server import OpcUaLine


@dataclass
class SimulatorOptions:
    host: str = "127.0.0.1"
    opcua_port: int | None = 4840
    modbus_port: int | None = 5020
    control_port: int | None = 8765
    modbus_rtu: str | None = None
    rtu_baudrate: int = 19200
    rtu_parity: str = "N"
    seed: int = 0
    rate_hz: float | None = None
    speed: float | None = None
    start: datetime | None = None  # virtual clock: timestamp of process time 0 (default now)
    opcua_policies: list[str] = field(default_factory=lambda: ["None"])
    cert_dir: Path | None = None
    users: dict[str, str] = field(default_factory=dict)


class Simulator:
    def __init__(self, config: LineConfig, options: SimulatorOptions) -> None:
        self.config = config
        self.options = options
        clock = (
            Clock()
            if options.speed is None
            else VirtualClock(speed=options.speed, start=options.start or datetime.now(UTC))
        )
        self.line = LineSimulation(config, options.seed, clock, rate_hz=options.rate_hz)
        self.opcua: OpcUaLine | None = None
        self.modbus: ModbusLine | None = None
        self.control: ControlServer | None = None
        if options.opcua_port is not None:
            security = OpcUaSecurity(
                policies=options.opcua_policies, cert_dir=options.cert_dir, users=options.users
            )
            self.opcua = OpcUaLine(config, options.host, options.opcua_port, clock.timestamp,
                                   security)
            self.line.sample_listeners.append(self.opcua.on_events)
            self.line.connection_listeners.append(self.opcua.on_connection)
        if options.modbus_port is not None or options.modbus_rtu:
            self.modbus = ModbusLine(config)
            if options.modbus_port is not None:
                self.modbus.add_tcp(options.host, options.modbus_port)
            if options.modbus_rtu:
                self.modbus.add_rtu(options.modbus_rtu, options.rtu_baudrate, options.rtu_parity)
            self.line.sample_listeners.append(self.modbus.on_events)
            self.line.connection_listeners.append(self.modbus.on_connection)
        if options.control_port is not None:
            self.control = ControlServer(self.line, options.host, options.control_port)

    def endpoints(self) -> dict[str, object]:
        o = self.options
        return {
            "opcua": self.opcua.endpoint if self.opcua else None,
            "modbus_tcp": f"{o.host}:{o.modbus_port}" if self.modbus and o.modbus_port else None,
            "modbus_rtu": o.modbus_rtu,
            "control": f"http://{o.host}:{o.control_port}" if self.control else None,
        }

    async def start(self) -> None:
        # First samples before serving, so no client ever reads an empty register.
        await self.line.tick()
        if self.opcua:
            await self.opcua.start()
        if self.modbus:
            await self.modbus.start()
        if self.control:
            await self.control.start()

    async def run(self, stop: asyncio.Event) -> None:
        await self.line.run(stop)

    async def stop(self) -> None:
        if self.control:
            await self.control.stop()
        if self.modbus:
            await self.modbus.stop()
        if self.opcua:
            await self.opcua.stop()
