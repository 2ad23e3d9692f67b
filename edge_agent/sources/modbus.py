"""Modbus TCP and RTU polling source.

Tags are planned into as few read requests as the protocol allows (see `modbus_codec`), one plan
per connection. An exception response from the device (illegal address, device busy) makes the
tags of that request `bad` for this poll and the poll goes on; a timeout or a broken link raises,
so the runner counts it and rebuilds the connection after repeated failures.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import struct
import time
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
    checked,
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

log = logging.getLogger(__name__)

_LINK_CHECK_S = 0.25  # how often a pending request checks that the connection is still open
_READ_METHODS = {Function.COILS: "read_coils", Function.DISCRETE_INPUTS: "read_discrete_inputs",
                 Function.HOLDING_REGISTERS: "read_holding_registers",
                 Function.INPUT_REGISTERS: "read_input_registers"}

_FUNCTION_NAMES = {"coil": 1, "coils": 1, "discrete_input": 2, "discrete_inputs": 2,
                   "holding": 3, "holding_register": 3, "holding_registers": 3,
                   "input": 4, "input_register": 4, "input_registers": 4}


class ModbusRegisterSpec(StrictModel):
    """Where a value is held and how it is encoded."""

    address: int = Field(ge=0, le=65535, description="zero-based register or bit address")
    function: int = Field(3, ge=1, le=4, description="1 coils, 2 discrete inputs, "
                          "3 holding registers, 4 input registers (or their names)")
    type: DataType = "float32"
    byte_order: ByteOrder = "ABCD"
    length: int | None = Field(None, ge=1, le=125, description="registers of a string")
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
    def _consistent(self) -> ModbusRegisterSpec:
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

    def describe(self, unit: int) -> str:
        return f"unit {unit} fc{self.function} @{self.address} {self.type} {self.byte_order}"


class ModbusTag(ModbusRegisterSpec):
    characteristic: str = Field(min_length=1, description="characteristic key on the server")
    scale: float = 1.0
    offset: float = 0.0
    unit: str = ""
    bad_raw: float | None = Field(None, description="raw value the device uses for 'no value' "
                                  "(e.g. -32768); reported as quality bad")


class ModbusPartId(ModbusRegisterSpec):
    """Where the part id is held; the id is `prefix` followed by the value."""

    prefix: str = Field("", description="e.g. 'SH-' when the register holds the number of "
                        "part SH-17")


class ModbusTrigger(ModbusRegisterSpec):
    """Triggered sampling, as for OPC UA: when the value at `address` changes (a part-complete
    counter or toggle bit), read `tags` once and tag the samples with the part id."""

    part_id: ModbusPartId | None = Field(
        None, description="where the part id is held; default: the trigger's own value")
    tags: list[ModbusTag] = Field(min_length=1)


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
    tags: list[ModbusTag] = Field(default_factory=list, description="read every interval_s")
    triggers: list[ModbusTrigger] = Field(
        default_factory=list, description="checked every interval_s; on a change, their tags "
        "are read once")

    @model_validator(mode="after")
    def _transport_target(self) -> ModbusConfig:
        if self.transport == "tcp" and not self.host:
            raise ValueError("transport tcp needs host (and port, default 502)")
        if self.transport == "rtu" and not self.serial_port:
            raise ValueError("transport rtu needs serial_port, e.g. /dev/ttyUSB0")
        if not self.tags and not self.triggers:
            raise ValueError("a modbus source needs tags, triggers or both")
        specs: list[tuple[str, ModbusRegisterSpec]] = [(f"tag {t.characteristic!r}", t)
                                                       for t in self.tags]
        for i, trig in enumerate(self.triggers):
            specs.append((f"triggers[{i}]", trig))
            if trig.part_id is not None:
                specs.append((f"triggers[{i}].part_id", trig.part_id))
            specs += [(f"tag {t.characteristic!r}", t) for t in trig.tags]
        for what, spec in specs:
            if spec.type != "bool" and register_count(spec.type, spec.length) > \
                    self.max_registers_per_read:
                raise ValueError(f"{what} is wider than "
                                 f"max_registers_per_read={self.max_registers_per_read}")
        return self

    def unit_of(self, spec: ModbusRegisterSpec) -> int:
        return spec.unit_id if spec.unit_id is not None else self.unit_id

    def plan(self, specs: list[ModbusRegisterSpec]) -> list[tuple[int, ReadBlock]]:
        """(unit id, block) pairs reading `specs`; each block's TagSpec.key indexes `specs`."""
        out = []
        for unit in sorted({self.unit_of(s) for s in specs}):
            keyed = [s.spec(i) for i, s in enumerate(specs) if self.unit_of(s) == unit]
            out += [(unit, b) for b in plan_reads(keyed, self.coalesce_gap,
                                                   self.max_registers_per_read)]
        return out


@register
class ModbusSource(Source):
    kind = "modbus"
    config_model = ModbusConfig
    config: ModbusConfig

    def __init__(self, config: ModbusConfig) -> None:
        super().__init__(config)
        self._client: AsyncModbusTcpClient | AsyncModbusSerialClient | None = None
        # (unit id, block) pairs; planning is pure, so it is done once.
        self._plan = config.plan(list(config.tags))
        # The trigger registers of every trigger, read together each interval; and per
        # trigger, one plan for its group: the tags, then the part id (last, if any).
        self._trigger_plan = config.plan(list(config.triggers))
        self._groups: list[tuple[list[ModbusRegisterSpec], list[tuple[int, ReadBlock]]]] = []
        for trig in config.triggers:
            specs: list[ModbusRegisterSpec] = list(trig.tags)
            if trig.part_id is not None:
                specs.append(trig.part_id)
            self._groups.append((specs, config.plan(specs)))
        self._trigger_alone = [config.plan([trig]) for trig in config.triggers]
        self._last_trigger: dict[int, Any] = {}
        self.requests_sent = 0
        self.missed_triggers = 0
        self._warned_missed = False

    @property
    def plan(self) -> list[tuple[int, ReadBlock]]:
        return list(self._plan)

    @property
    def read_timeout_s(self) -> float:
        # A device that does not answer costs (retries + 1) x timeout_s before the request
        # fails; the guard must not cut the configured retries short.
        cfg = self.config
        return max(super().read_timeout_s, (cfg.retries + 1) * cfg.timeout_s + 1)

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
        # After a (re)connect the first trigger value is a baseline, not a change: parts made
        # while the link was down cannot be read any more.
        self._last_trigger = {}
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
        tags = self.config.tags
        for unit, block in self._plan:
            ts, values = await self._read_block(client, unit, block)
            samples += [_sample(tags[k], v, ts) for k, v in values.items()]
        if self._trigger_plan:
            samples += await self._check_triggers(client)
        return samples

    async def _check_triggers(self, client: Any) -> list[Sample]:
        current: dict[int, Any] = {}
        for unit, block in self._trigger_plan:
            current.update((await self._read_block(client, unit, block))[1])
        samples: list[Sample] = []
        for i, trig in enumerate(self.config.triggers):
            value = current.get(i)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue  # the device refused the read, or has no value: no decision this time
            before = self._last_trigger.get(i)
            self._last_trigger[i] = value
            if before is None or value == before:
                continue
            self._note_missed(trig, before, value)
            samples += await self._read_consistent_group(client, i, value)
        return samples

    async def _read_consistent_group(self, client: Any, index: int, value: Any) -> list[Sample]:
        """Read the group, then the trigger again: if it moved meanwhile (the next part was
        completed between the requests), the group may mix two parts, so read again for the
        newer part. A device updates a part's registers together with its counter, so a
        trigger unchanged across the group's requests means the group is one part's."""
        trig = self.config.triggers[index]
        alone = self._trigger_alone[index]
        for _ in range(3):
            group = await self._read_group(client, index, value)
            again: dict[int, Any] = {}
            for unit, block in alone:
                again.update((await self._read_block(client, unit, block))[1])
            now = again.get(0)
            if now is None or now == value:
                return group
            self._note_missed(trig, value, now, dropped=1)
            self._last_trigger[index] = value = now
        self._note_missed(trig, value, value, dropped=1)
        return []  # parts complete faster than a group can be read; counted, not guessed

    async def _read_group(self, client: Any, index: int, trigger_value: Any) -> list[Sample]:
        trig = self.config.triggers[index]
        specs, plan = self._groups[index]
        values: dict[int, Any] = {}
        ts = time.time_ns() // 1000  # Sample.ts_us
        for unit, block in plan:
            ts, got = await self._read_block(client, unit, block)
            values.update(got)
        if trig.part_id is not None:
            raw = values.get(len(specs) - 1)
            part_id = None if raw is None else trig.part_id.prefix + _text(raw)
        else:
            part_id = _text(trigger_value)
        return [_sample(tag, values.get(k), ts, part_id) for k, tag in enumerate(trig.tags)]

    def _note_missed(self, trig: ModbusTrigger, before: Any, value: Any,
                     dropped: int = 0) -> None:
        """Count parts not sampled: a counter that moved by more than one between two checks
        (interval_s longer than the part cycle), or a group read that had to be dropped."""
        missed = dropped
        if trig.type not in ("bool", "string", "float32", "float64"):
            missed += max(0, int(value) - int(before) - 1)  # negative: a counter reset
        if missed <= 0:
            return
        self.missed_triggers += missed
        if not self._warned_missed:
            self._warned_missed = True
            log.warning("%s: trigger @%d moved from %s to %s: %d part(s) not sampled; check "
                        "faster than the part cycle (interval_s); counted in missed_triggers",
                        self.config.name, trig.address, before, value, missed)

    async def _read_block(self, client: Any, unit: int, block: ReadBlock
                          ) -> tuple[int, dict[int, Any]]:
        """Decoded values by spec key (None for each value when the device answered with an
        exception); a link failure raises."""
        call = getattr(client, _READ_METHODS[block.function])
        self.requests_sent += 1
        what = f"unit {unit} {block.function.name.lower()} {block.address}+{block.count}"
        # pymodbus keeps waiting for an answer (timeout_s, then each retry) after the device
        # has closed the connection; notice the loss instead of waiting it out.
        request = asyncio.ensure_future(call(block.address, count=block.count, device_id=unit))
        try:
            while not request.done():
                await asyncio.wait({request}, timeout=_LINK_CHECK_S)
                if not request.done() and not client.connected:
                    raise SourceError(f"{what}: the device closed the connection")
        finally:
            if not request.done():  # given up above, or this read was cancelled
                request.cancel()
        try:
            response = request.result()
        except ModbusException as exc:
            raise SourceError(f"{what}: {exc}") from exc
        ts = time.time_ns() // 1000  # Sample.ts_us
        if response.isError():
            # The device answered with an exception code: the link is fine, these values not.
            return ts, {spec.key: None for spec in block.tags}
        out: dict[int, Any] = {}
        if block.function.is_bits:
            bits = response.bits
            for spec in block.tags:
                out[spec.key] = bool(block.slice_for(spec, bits)[0])
            return ts, out
        words = response.registers
        # The block's bytes as they came off the wire: a big-endian (ABCD) number is read
        # from them in place; other orders, strings and bools go through `decode`.
        data = struct.pack(f">{len(words)}H", *words)
        start = block.address
        for spec in block.tags:
            unpack = _IN_PLACE.get((spec.data_type, spec.byte_order))
            if unpack is not None:
                out[spec.key] = unpack(data, 2 * (spec.address - start))[0]
            else:
                out[spec.key] = decode(block.slice_for(spec, words), spec.data_type,
                                       spec.byte_order)
        return ts, out

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            # Closing a half-open transport must never take the agent down.
            with contextlib.suppress(Exception):
                client.close()

    def tag_rows(self) -> list[tuple[str, str, str]]:
        cfg = self.config
        rows = [(t.describe(cfg.unit_of(t)), t.characteristic, t.unit) for t in cfg.tags]
        for trig in cfg.triggers:
            on = f"on {trig.describe(cfg.unit_of(trig))}"
            rows += [(f"{t.describe(cfg.unit_of(t))} ({on})", t.characteristic, t.unit)
                     for t in trig.tags]
        return rows


# (type, byte order) -> unpack_from for the numbers whose bytes are the registers' in order.
_IN_PLACE = {(t, "ABCD"): struct.Struct(fmt).unpack_from
             for t, fmt in {"int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I",
                            "int64": ">q", "float32": ">f", "float64": ">d"}.items()}
_IN_PLACE.update({(t, "CDAB"): _IN_PLACE[(t, "ABCD")] for t in ("int16", "uint16")})


def _sample(tag: ModbusTag, value: Any, ts_us: int, part_id: str | None = None) -> Sample:
    if value is None:
        return checked(tag.characteristic, None, "bad", ts_us, part_id)
    if isinstance(value, str):
        return checked(tag.characteristic, value, "good", ts_us, part_id)
    if tag.bad_raw is not None and float(value) == tag.bad_raw:
        return checked(tag.characteristic, None, "bad", ts_us, part_id)
    return checked(tag.characteristic, float(value) * tag.scale + tag.offset, "good", ts_us,
                   part_id)


def _text(value: Any) -> str:
    """A part id from a register value: integers without a decimal point."""
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
