"""Modbus TCP and RTU polling source.

Tags are planned into as few read requests as the protocol allows (see `modbus_codec`), one plan
per connection. An exception response from the device (illegal address, device busy) makes the
tags of that request `bad` for this poll and the poll goes on; a timeout or a broken link raises,
so the runner counts it and rebuilds the connection after repeated failures.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from edge_agent.sources.base import (
    Sample,
    Source,
    SourceConfig,
    SourceError,
    StrictModel,
    register,
)
from edge_agent.sources.modbus_codec import (
    ByteOrder,
    DataType,
    Function,
    ReadBlock,
    TagSpec,
    decode,
    plan_reads,
    register_count,
)

_FUNCTION_NAMES = {"coil": 1, "coils": 1, "discrete_input": 2, "discrete_inputs": 2,
                   "holding": 3, "holding_register": 3, "holding_registers": 3,
                   "input": 4, "input_register": 4, "input_registers": 4}


class ModbusTag(StrictModel):
    characteristic: str = Field(min_length=1, description="characteristic key on the server")
    address: int = Field(ge=0, le=65535, description="zero-based register or bit address")
    function: int = Field(3, ge=1, le=4, description="1 coils, 2 discrete inputs, "
                          "3 holding registers, 4 input registers (or their names)")
    type: DataType = "float32"
    byte_order: ByteOrder = "ABCD"
    length: int | None = Field(None, ge=1, le=125, description="registers of a string")
    scale: float = 1.0
    offset: float = 0.0
    unit: str = ""
    bad_raw: float | None = Field(None, description="raw value the device uses for 'no value' "
                                  "(e.g. -32768); reported as quality bad")
    unit_id: int | None = Field(None, ge=0, le=255, description="overrides the device's unit id")

    @field_validator("function", mode="before")
    @classmethod
    def _function_by_name(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.isdigit():
            try:
                return _FUNCTION_NAMES[value.lower()]
            except KeyError:
                raise ValueError(
                    f"unknown function {value!r}; use 1-4 or one of coil, discrete_input, "
                    "holding, input") from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ModbusTag:
        if self.function in (1, 2) and self.type != "bool":
            raise ValueError(f"function {self.function} reads bits: set type: bool "
                             f"(got {self.type})")
        if self.type == "string" and self.length is None:
            raise ValueError("type string needs length: the number of registers "
                             "(2 characters each)")
        return self

    def spec(self, key: int) -> TagSpec:
        return TagSpec(key, Function(self.function), self.address, self.type,
                       self.byte_order, self.length)


class ModbusConfig(SourceConfig):
    kind: Literal["modbus"]
    transport: Literal["tcp", "rtu"] = "tcp"
    host: str | None = Field(None, description="TCP: device host name or address")
    port: int = Field(502, ge=1, le=65535)
    serial_port: str | None = Field(None, description="RTU: e.g. /dev/ttyUSB0")
    baudrate: int = Field(19200, gt=0)
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8
    unit_id: int = Field(1, ge=0, le=255, description="Modbus unit (slave, device) id")
    retries: int = Field(1, ge=0, description="retries of one request before it counts as failed")
    coalesce_gap: int = Field(0, ge=0, description="read across gaps of up to this many unused "
                              "registers (only for devices that allow it)")
    max_registers_per_read: int = Field(125, ge=1, le=125)
    tags: list[ModbusTag] = Field(min_length=1)

    @model_validator(mode="after")
    def _transport_target(self) -> ModbusConfig:
        if self.transport == "tcp" and not self.host:
            raise ValueError("transport tcp needs host (and port, default 502)")
        if self.transport == "rtu" and not self.serial_port:
            raise ValueError("transport rtu needs serial_port, e.g. /dev/ttyUSB0")
        for tag in self.tags:
            if tag.type != "bool" and register_count(tag.type, tag.length) > \
                    self.max_registers_per_read:
                raise ValueError(f"tag {tag.characteristic!r} is wider than "
                                 f"max_registers_per_read={self.max_registers_per_read}")
        return self


@register
class ModbusSource(Source):
    kind = "modbus"
    config_model = ModbusConfig
    config: ModbusConfig

    def __init__(self, config: ModbusConfig) -> None:
        super().__init__(config)
        self._client: AsyncModbusTcpClient | AsyncModbusSerialClient | None = None
        # (unit id, block) pairs; planning is pure, so it is done once.
        self._plan: list[tuple[int, ReadBlock]] = []
        units = sorted({t.unit_id if t.unit_id is not None else config.unit_id
                        for t in config.tags})
        for unit in units:
            specs = [t.spec(i) for i, t in enumerate(config.tags)
                     if (t.unit_id if t.unit_id is not None else config.unit_id) == unit]
            for block in plan_reads(specs, config.coalesce_gap, config.max_registers_per_read):
                self._plan.append((unit, block))
        self.requests_sent = 0

    @property
    def plan(self) -> list[tuple[int, ReadBlock]]:
        return list(self._plan)

    async def connect(self) -> None:
        cfg = self.config
        # reconnect_delay=0 turns pymodbus's own reconnect off: the runner owns reconnection.
        if cfg.transport == "tcp":
            client: Any = AsyncModbusTcpClient(
                cfg.host or "", port=cfg.port, timeout=cfg.timeout_s, retries=cfg.retries,
                reconnect_delay=0, name=cfg.name)
            target = f"{cfg.host}:{cfg.port}"
        else:
            client = AsyncModbusSerialClient(
                cfg.serial_port or "", baudrate=cfg.baudrate, parity=cfg.parity,
                stopbits=cfg.stopbits, bytesize=cfg.bytesize, timeout=cfg.timeout_s,
                retries=cfg.retries, reconnect_delay=0, name=cfg.name)
            target = cfg.serial_port or ""
        self._client = client
        try:
            ok = await asyncio.wait_for(client.connect(), cfg.timeout_s + 1)
        except (TimeoutError, OSError) as exc:
            ok = False
            reason = str(exc) or type(exc).__name__
        else:
            reason = "connection refused or timed out"
        if not ok:
            await self.close()
            raise SourceError(f"cannot connect to {target}: {reason}")

    async def read(self) -> list[Sample]:
        client = self._client
        if client is None or not client.connected:
            raise SourceError("not connected")
        samples: list[Sample] = []
        for unit, block in self._plan:
            samples.extend(await self._read_block(client, unit, block))
        return samples

    async def _read_block(self, client: Any, unit: int, block: ReadBlock) -> list[Sample]:
        call = {
            Function.COILS: client.read_coils,
            Function.DISCRETE_INPUTS: client.read_discrete_inputs,
            Function.HOLDING_REGISTERS: client.read_holding_registers,
            Function.INPUT_REGISTERS: client.read_input_registers,
        }[block.function]
        self.requests_sent += 1
        try:
            response = await call(block.address, count=block.count, device_id=unit)
        except ModbusException as exc:
            raise SourceError(f"unit {unit} {block.function.name.lower()} "
                              f"{block.address}+{block.count}: {exc}") from exc
        ts = datetime.now(UTC)
        tags = self.config.tags
        if response.isError():
            # The device answered with an exception code: the link is fine, these tags are not.
            return [Sample.of(tags[spec.key].characteristic, None, "bad", ts)
                    for spec in block.tags]
        values = response.bits if block.function.is_bits else response.registers
        samples = []
        for spec in block.tags:
            tag = tags[spec.key]
            raw = block.slice_for(spec, values)
            value = bool(raw[0]) if block.function.is_bits else decode(raw, tag.type,
                                                                        tag.byte_order)
            if isinstance(value, str):
                samples.append(Sample.of(tag.characteristic, value, "good", ts))
            elif tag.bad_raw is not None and float(value) == tag.bad_raw:
                samples.append(Sample.of(tag.characteristic, None, "bad", ts))
            else:
                samples.append(Sample.of(tag.characteristic,
                                         float(value) * tag.scale + tag.offset, "good", ts))
        return samples

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            # Closing a half-open transport must never take the agent down.
            with contextlib.suppress(Exception):
                client.close()

    def tag_rows(self) -> list[tuple[str, str, str]]:
        rows = []
        for tag in self.config.tags:
            unit = tag.unit_id if tag.unit_id is not None else self.config.unit_id
            rows.append((f"unit {unit} fc{tag.function} @{tag.address} {tag.type} "
                         f"{tag.byte_order}", tag.characteristic, tag.unit))
        return rows
