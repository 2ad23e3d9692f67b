"""The line's machines as Modbus devices (one unit id each), over TCP or RTU on a serial port.

Each machine keeps a register image (see modbus_map.py) that is rewritten on every sample; the
pymodbus datastore copies the image into its blocks on each request, so every read sees the
latest sample and all encodings of a variable in one image agree.
"""

from __future__ import annotations

import logging
import termios
from dataclasses import dataclass, field
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.exceptions import NoSuchIdException
from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice
from pymodbus.simulator.simutils import SimUtils

from simulators import modbus_map as mm
from simulators.config import LineConfig, MachineConfig
from simulators.line import Event, Published, PublishedLot

log = logging.getLogger(__name__)

_HOLDING_FCS = {3, 6, 16, 22, 23}
_INPUT_FCS = {4}
_COIL_FCS = {1, 5, 15}
_DISCRETE_FCS = {2}


@dataclass
class MachineImage:
    """The registers and bits of one machine, kept current by `update`."""

    machine: MachineConfig
    registers: list[int] = field(default_factory=lambda: [0] * mm.REGISTER_COUNT)
    discrete: list[bool] = field(default_factory=lambda: [False] * mm.STATUS_BITS)
    coils: list[bool] = field(default_factory=lambda: [False] * mm.STATUS_BITS)

    def __post_init__(self) -> None:
        self.connected = True
        self.index = {v.name: i for i, v in enumerate(self.machine.variables)}
        self.attribute_index = {a.name: j for j, a in enumerate(self.machine.attributes)}
        for name in self.index:
            self.set_variable(name, None, "bad", 0)
        self.coils[mm.COIL_RUNNING] = True

    def set_variable(self, name: str, value: float | None, quality: str, count: int) -> None:
        i = self.index[name]
        regs = self.registers
        if quality != "good":
            value = None
        for order, (f32, f64) in mm.float_encodings(value).items():
            base32, base64 = mm.FLOAT32_ORDERS[order] + 2 * i, mm.FLOAT64_ORDERS[order] + 4 * i
            regs[base32 : base32 + 2] = f32
            regs[base64 : base64 + 4] = f64
        regs[mm.INT16_BASE + i] = mm.encode_int16(value, self.machine.variables[i].scale)
        regs[mm.SAMPLE_COUNTER_BASE + 2 * i : mm.SAMPLE_COUNTER_BASE + 2 * i + 2] = (
            mm.encode_uint32(count)
        )
        self.discrete[mm.BIT_GOOD_BASE + i] = value is not None
        self.coils[mm.COIL_FAULT_BASE + i] = value is None

    def set_part(self, part_count: int, part_number: int) -> None:
        self.registers[mm.PART_COUNTER : mm.PART_COUNTER + 2] = mm.encode_uint32(part_count)
        self.registers[mm.PART_ID : mm.PART_ID + 2] = mm.encode_uint32(part_number)
        self.discrete[mm.BIT_PART_TRIGGER] = bool(part_count % 2)

    def set_attribute(self, name: str, lot: int, count: int, size: int) -> None:
        base = mm.ATTRIBUTE_BASE + mm.ATTRIBUTE_STRIDE * self.attribute_index[name]
        self.registers[base : base + 6] = [
            *mm.encode_uint32(lot), *mm.encode_uint32(count), *mm.encode_uint32(size)
        ]

    async def action(
        self,
        function_code: int,
        _start_address: int,
        _address: int,
        _count: int,
        current: list[int],
        set_values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        """pymodbus datastore hook: refuse writes, copy the image into the block on reads."""
        if not self.connected:
            # With ignore_missing_devices, pymodbus then sends nothing: the client times out.
            raise NoSuchIdException(f"unit of {self.machine.name} is disconnected")
        if set_values is not None:
            return ExcCodes.ILLEGAL_ADDRESS
        if function_code in _HOLDING_FCS or function_code in _INPUT_FCS:
            current[: mm.REGISTER_COUNT] = self.registers
        elif function_code in _COIL_FCS:
            current[: mm.STATUS_BITS // 16] = SimUtils.bitsToRegisters(self.coils)
        elif function_code in _DISCRETE_FCS:
            current[: mm.STATUS_BITS // 16] = SimUtils.bitsToRegisters(self.discrete)
        return None

    def device(self, unit_id: int) -> SimDevice:
        def registers() -> list[SimData]:
            return [SimData(0, count=mm.REGISTER_COUNT, values=0, datatype=DataType.REGISTERS)]

        def bits() -> list[SimData]:
            return [SimData(0, count=mm.STATUS_BITS, values=False, datatype=DataType.BITS)]

        return SimDevice(
            id=unit_id,
            simdata=(bits(), bits(), registers(), registers()),
            action=self.action,
        )


class ModbusLine:
    """All machines of a line on one Modbus TCP port and/or one serial port (RTU)."""

    def __init__(self, config: LineConfig) -> None:
        self.config = config
        self.images = {m.name: MachineImage(m) for m in config.machines}
        self._servers: list[Any] = []
        self._endpoints: list[tuple[str, dict[str, Any]]] = []

    def devices(self) -> list[SimDevice]:
        return [self.images[m.name].device(self.config.unit_id(m)) for m in self.config.machines]

    async def on_events(self, events: list[Event]) -> None:
        # The image is a snapshot: only the newest sample of each variable (and the newest lot
        # and part) in a batch can ever be read, so encode those alone.
        newest: dict[tuple[str, str, str], Event] = {}
        for e in events:
            if isinstance(e, Published):
                newest[("v", e.machine, e.variable)] = e
            elif isinstance(e, PublishedLot):
                newest[("a", e.machine, e.stream)] = e
            else:
                newest[("p", e.machine, "")] = e
        for e in newest.values():
            image = self.images[e.machine]
            if isinstance(e, Published):
                image.set_variable(e.variable, e.sample.value, e.sample.quality, e.sample.index + 1)
            elif isinstance(e, PublishedLot):
                image.set_attribute(e.stream, e.lot.index + 1, e.lot.count, e.lot.size)
            else:
                image.set_part(e.count, e.number)

    def add_tcp(self, host: str, port: int) -> None:
        self._endpoints.append(("tcp", {"address": (host, port)}))

    def add_rtu(self, port: str, baudrate: int = 19200, parity: str = "N") -> None:
        self._endpoints.append(("rtu", {"port": port, "baudrate": baudrate, "parity": parity}))

    async def start(self) -> None:
        for kind, params in self._endpoints:
            server: Any
            if kind == "tcp":
                server = ModbusTcpServer(self.devices(), ignore_missing_devices=True, **params)
            else:
                server = ModbusSerialServer(self.devices(), ignore_missing_devices=True, **params)
            try:
                await server.serve_forever(background=True)
            except (RuntimeError, termios.error) as exc:
                where = params.get("port") or params.get("address")
                raise OSError(f"Modbus {kind} cannot serve on {where}: {exc}") from exc
            self._servers.append(server)
            log.info("modbus %s serving on %s", kind, params)

    async def stop(self) -> None:
        for server in self._servers:
            await server.shutdown()
        self._servers.clear()

    async def on_connection(self, machine: str | None, connected: bool) -> None:
        """Device disconnect: stop listening and drop clients; reconnect: listen again.

        A machine's disconnect silences its unit id only: requests to it get no answer, as a
        powered-off slave on an RS-485 line or behind a gateway.
        """
        if machine is not None:
            self.images[machine].connected = connected
            return
        if connected:
            await self.start()
        else:
            await self.stop()
