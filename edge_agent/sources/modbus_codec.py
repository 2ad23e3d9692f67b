"""Modbus data types, byte/word orders and request planning: pure functions, no I/O.

Byte-order names follow the usual integrator convention, naming the bytes of the value from most
to least significant as A B C D (...): `ABCD` is big-endian as Modbus itself is; `DCBA` is fully
little-endian; `BADC` swaps the bytes inside each 16-bit register; `CDAB` swaps the registers
(word order) but not the bytes. For 64-bit values the same two switches (swap bytes within a
register, reverse register order) apply over four registers.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Literal

DataType = Literal[
    "bool", "int16", "uint16", "int32", "uint32", "int64", "float32", "float64", "string"
]
ByteOrder = Literal["ABCD", "DCBA", "BADC", "CDAB"]
DATA_TYPES: tuple[str, ...] = DataType.__args__  # type: ignore[attr-defined]
BYTE_ORDERS: tuple[str, ...] = ByteOrder.__args__  # type: ignore[attr-defined]

# The protocol's limits on one request (Modbus Application Protocol v1.1b3, 6.1-6.4).
MAX_REGISTERS_PER_READ = 125
MAX_BITS_PER_READ = 2000

_STRUCT = {
    "int16": ">h", "uint16": ">H", "int32": ">i", "uint32": ">I",
    "int64": ">q", "float32": ">f", "float64": ">d",
}
_WIDTH = {"bool": 1, "int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2,
          "int64": 4, "float64": 4}


class Function(IntEnum):
    """Modbus read function codes."""

    COILS = 1
    DISCRETE_INPUTS = 2
    HOLDING_REGISTERS = 3
    INPUT_REGISTERS = 4

    @property
    def is_bits(self) -> bool:
        return self in (Function.COILS, Function.DISCRETE_INPUTS)

    @property
    def max_count(self) -> int:
        return MAX_BITS_PER_READ if self.is_bits else MAX_REGISTERS_PER_READ


def register_count(data_type: str, length: int | None = None) -> int:
    """How many registers (or bits, for coils and discrete inputs) one value occupies."""
    if data_type == "string":
        if not length or length < 1:
            raise ValueError("a string needs a length in registers (2 characters each)")
        return length
    return _WIDTH[data_type]


def _swaps(order: str) -> tuple[bool, bool]:
    """(swap bytes inside each register, reverse register order)."""
    return {"ABCD": (False, False), "DCBA": (True, True),
            "BADC": (True, False), "CDAB": (False, True)}[order]


def registers_to_bytes(registers: Sequence[int], order: str) -> bytes:
    """Reassemble a value's bytes, most significant first, from registers as read off the wire."""
    swap_bytes, reverse_words = _swaps(order)
    words = list(reversed(registers)) if reverse_words else list(registers)
    if swap_bytes:
        words = [((w & 0xFF) << 8) | (w >> 8) for w in words]
    return b"".join(w.to_bytes(2, "big") for w in words)


def bytes_to_registers(raw: bytes, order: str) -> list[int]:
    """Inverse of `registers_to_bytes`: the registers a device would hold for these bytes."""
    swap_bytes, reverse_words = _swaps(order)
    words = [int.from_bytes(raw[i:i + 2], "big") for i in range(0, len(raw), 2)]
    if swap_bytes:
        words = [((w & 0xFF) << 8) | (w >> 8) for w in words]
    return list(reversed(words)) if reverse_words else words


def decode(registers: Sequence[int], data_type: str, order: str = "ABCD") -> float | bool | str:
    """Decode one value from its registers (for `bool` on registers: non-zero is true)."""
    if data_type == "bool":
        return bool(registers[0])
    raw = registers_to_bytes(registers, order)
    if data_type == "string":
        # Strings are stored as character pairs; padding is NUL or space.
        return raw.split(b"\x00", 1)[0].decode("latin-1").strip()
    return struct.unpack(_STRUCT[data_type], raw)[0]


def encode(value: float | bool | str, data_type: str, order: str = "ABCD",
           length: int | None = None) -> list[int]:
    """Encode a value into registers as a device would hold them (used by tests and tools)."""
    if data_type == "bool":
        return [1 if value else 0]
    if data_type == "string":
        n = register_count("string", length)
        raw = str(value).encode("latin-1")[: 2 * n].ljust(2 * n, b"\x00")
    else:
        fmt = _STRUCT[data_type]
        raw = struct.pack(fmt, int(value) if fmt[1] not in "fd" else float(value))
    return bytes_to_registers(raw, order)


@dataclass(frozen=True, slots=True)
class TagSpec:
    """What the planner needs to know about one tag."""

    key: int  # index of the tag in its device's config
    function: Function
    address: int
    data_type: str
    byte_order: str = "ABCD"
    length: int | None = None

    @property
    def count(self) -> int:
        return 1 if self.function.is_bits else register_count(self.data_type, self.length)

    @property
    def end(self) -> int:
        return self.address + self.count


@dataclass(slots=True)
class ReadBlock:
    """One read request covering one or more tags."""

    function: Function
    address: int
    count: int
    tags: list[TagSpec] = field(default_factory=list)

    def slice_for(self, tag: TagSpec, values: Sequence[int]) -> Sequence[int]:
        start = tag.address - self.address
        return values[start:start + tag.count]


def plan_reads(tags: Sequence[TagSpec], max_gap: int = 0,
               max_count: int | None = None) -> list[ReadBlock]:
    """Group tags into as few read requests as the protocol limit allows.

    Tags of one function code whose addresses touch or overlap (or are at most `max_gap`
    registers apart, for devices that tolerate reading unmapped addresses) share a request, up to
    the per-request limit; anything further apart starts a new request.
    """
    blocks: list[ReadBlock] = []
    for function in sorted({t.function for t in tags}):
        limit = min(max_count or function.max_count, function.max_count)
        current: ReadBlock | None = None
        for tag in sorted((t for t in tags if t.function == function),
                          key=lambda t: (t.address, t.count)):
            if tag.count > limit:
                raise ValueError(f"tag at address {tag.address} spans {tag.count} registers, "
                                 f"more than one request may read ({limit})")
            if current is not None:
                end = current.address + current.count
                new_end = max(end, tag.end)
                if tag.address <= end + max_gap and new_end - current.address <= limit:
                    current.count = new_end - current.address
                    current.tags.append(tag)
                    continue
            current = ReadBlock(function, tag.address, tag.count, [tag])
            blocks.append(current)
    return blocks
