"""The Modbus register map of a machine (one unit id), and the encoding of values into it.

Holding registers (function 3) and input registers (function 4) carry the same layout. Addresses
are 0-based PDU addresses (mbpoll: add 1, or pass -0). For variable i (file order, 0-based):

| registers        | content                                                    |
|------------------|------------------------------------------------------------|
| 0 + 2i           | float32 ABCD (big-endian; the agent contract)              |
| 100 + 2i         | float32 CDAB (word-swapped)                                |
| 200 + 2i         | float32 BADC (byte-swapped)                                |
| 300 + 2i         | float32 DCBA (little-endian)                               |
| 400 + 4i         | float64 ABCD                                               |
| 500 + 4i         | float64 CDAB (words reversed)                              |
| 600 + 4i         | float64 BADC (bytes swapped in each word)                  |
| 700 + 4i         | float64 DCBA (little-endian)                               |
| 800 + i          | int16 = round(value * scale), -32768 when there is no value|
| 900 + 2i         | uint32 ABCD sample counter of the variable                 |
| 1000             | uint32 ABCD part counter (part mode)                       |
| 1002             | uint32 ABCD id number of the current part (part mode)      |
| 1100 + 6j        | attribute stream j: uint32 lot counter, uint32 count,      |
|                  | uint32 lot size / units inspected (each ABCD)              |

A float with no value (sensor dropout) is NaN. Discrete inputs: i = variable i has a good value;
100 = part-complete trigger (toggles once per part). Coils (read-only): i = variable i sensor fault;
100 = device running. Writes are refused with an illegal-address exception.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass

from simulators.config import LineConfig, MachineConfig

FLOAT32_ORDERS = {"ABCD": 0, "CDAB": 100, "BADC": 200, "DCBA": 300}
FLOAT64_ORDERS = {"ABCD": 400, "CDAB": 500, "BADC": 600, "DCBA": 700}
INT16_BASE = 800
SAMPLE_COUNTER_BASE = 900
PART_COUNTER = 1000
PART_ID = 1002
ATTRIBUTE_BASE = 1100
ATTRIBUTE_STRIDE = 6
REGISTER_COUNT = 1300  # covers 1100 + 6 * 25 attribute streams
STATUS_BITS = 128  # discrete inputs and coils 0..127
BIT_GOOD_BASE = 0
BIT_PART_TRIGGER = 100
COIL_FAULT_BASE = 0
COIL_RUNNING = 100
INT16_NO_VALUE = -32768


def word_order(raw: bytes, order: str) -> bytes:
    """Rearrange big-endian bytes into a Modbus byte/word order (its own inverse)."""
    if order == "ABCD":
        return raw
    if order == "DCBA":
        return raw[::-1]
    words = [raw[i : i + 2] for i in range(0, len(raw), 2)]
    if order == "CDAB":
        return b"".join(reversed(words))
    if order == "BADC":
        return b"".join(w[::-1] for w in words)
    raise ValueError(f"unknown byte order {order!r}; use ABCD, CDAB, BADC or DCBA")


def to_registers(raw: bytes) -> list[int]:
    return [int.from_bytes(raw[i : i + 2], "big") for i in range(0, len(raw), 2)]


def from_registers(registers: list[int]) -> bytes:
    return b"".join(r.to_bytes(2, "big") for r in registers)


def encode_float(value: float | None, fmt: str, order: str) -> list[int]:
    """Registers of `value` as float32 (`fmt="f"`) or float64 (`"d"`) in `order`; NaN for None."""
    v = math.nan if value is None else value
    try:
        raw = struct.pack(f">{fmt}", v)
    except OverflowError:  # beyond float32: saturate to infinity of the same sign
        raw = struct.pack(f">{fmt}", math.copysign(math.inf, v))
    return to_registers(word_order(raw, order))


def _swap(word: int) -> int:
    return ((word & 0xFF) << 8) | (word >> 8)


_F32 = struct.Struct(">HH")
_F64 = struct.Struct(">HHHH")


def float_encodings(value: float | None) -> dict[str, tuple[list[int], list[int]]]:
    """order -> (float32 registers, float64 registers), the same as `encode_float` for each.

    One pack per width and word shuffles, because this runs for every sample served.
    """
    v = math.nan if value is None else value
    try:
        a, b = _F32.unpack(struct.pack(">f", v))
    except OverflowError:  # beyond float32: saturate as the sensor's float32 register would
        a, b = _F32.unpack(struct.pack(">f", math.copysign(math.inf, v)))
    w, x, y, z = _F64.unpack(struct.pack(">d", v))
    return {
        "ABCD": ([a, b], [w, x, y, z]),
        "CDAB": ([b, a], [z, y, x, w]),
        "BADC": ([_swap(a), _swap(b)], [_swap(w), _swap(x), _swap(y), _swap(z)]),
        "DCBA": ([_swap(b), _swap(a)], [_swap(z), _swap(y), _swap(x), _swap(w)]),
    }


def decode_float(registers: list[int], fmt: str, order: str) -> float:
    return struct.unpack(f">{fmt}", word_order(from_registers(registers), order))[0]


def encode_uint32(value: int) -> list[int]:
    return to_registers(struct.pack(">I", value & 0xFFFFFFFF))


def encode_int16(value: float | None, scale: float) -> int:
    """Two's-complement register of round(value * scale), saturated; INT16_NO_VALUE for None."""
    if value is None or not math.isfinite(value):
        return INT16_NO_VALUE & 0xFFFF
    scaled = max(-32767, min(32767, round(value * scale)))
    return scaled & 0xFFFF


@dataclass(frozen=True, slots=True)
class MapEntry:
    table: str  # "holding+input", "discrete input" or "coil"
    address: int
    count: int  # registers or bits
    encoding: str
    name: str
    unit: str
    note: str = ""


def machine_map(machine: MachineConfig) -> list[MapEntry]:
    """Every register and bit of one machine, in address order within each table."""
    regs: list[MapEntry] = []
    for order, base in FLOAT32_ORDERS.items():
        for i, v in enumerate(machine.variables):
            regs.append(MapEntry("holding+input", base + 2 * i, 2, f"float32 {order}", v.name,
                                 v.unit, "NaN when no value"))
    for order, base in FLOAT64_ORDERS.items():
        for i, v in enumerate(machine.variables):
            regs.append(MapEntry("holding+input", base + 4 * i, 4, f"float64 {order}", v.name,
                                 v.unit, "NaN when no value"))
    for i, v in enumerate(machine.variables):
        regs.append(MapEntry("holding+input", INT16_BASE + i, 1, f"int16 x{v.scale:g}", v.name,
                             v.unit, f"value = register / {v.scale:g}; -32768 when no value"))
    for i, v in enumerate(machine.variables):
        regs.append(MapEntry("holding+input", SAMPLE_COUNTER_BASE + 2 * i, 2, "uint32 ABCD",
                             f"{v.name}.samples", "", "sample counter"))
    if machine.part_mode is not None:
        regs.append(MapEntry("holding+input", PART_COUNTER, 2, "uint32 ABCD", "part_count", "",
                             "increments once per produced part"))
        regs.append(MapEntry("holding+input", PART_ID, 2, "uint32 ABCD", "part_id", "",
                             f"<n> of part id {machine.part_mode.part_id_prefix}<n>"))
    for j, a in enumerate(machine.attributes):
        base = ATTRIBUTE_BASE + ATTRIBUTE_STRIDE * j
        size = "lot_size" if a.kind == "defectives" else "units_inspected"
        regs.append(MapEntry("holding+input", base, 2, "uint32 ABCD", f"{a.name}.lot", "",
                             "lot / inspection counter"))
        regs.append(MapEntry("holding+input", base + 2, 2, "uint32 ABCD", a.name, a.kind.value,
                             f"{a.kind.value} in the last lot"))
        regs.append(MapEntry("holding+input", base + 4, 2, "uint32 ABCD", f"{a.name}.{size}",
                             "", size))
    bits: list[MapEntry] = []
    for i, v in enumerate(machine.variables):
        bits.append(MapEntry("discrete input", BIT_GOOD_BASE + i, 1, "bit", f"{v.name}.good", "",
                             "1 while the sensor gives a good value"))
    if machine.part_mode is not None:
        bits.append(MapEntry("discrete input", BIT_PART_TRIGGER, 1, "bit", "part_trigger", "",
                             "toggles once per produced part"))
    for i, v in enumerate(machine.variables):
        bits.append(MapEntry("coil", COIL_FAULT_BASE + i, 1, "bit", f"{v.name}.fault", "",
                             "1 while the sensor has dropped out (read-only)"))
    bits.append(MapEntry("coil", COIL_RUNNING, 1, "bit", "running", "", "1 while producing"))
    return regs + bits


def format_map(line: LineConfig) -> str:
    """The register map as text, for `spc simulate --print-map`."""
    out = [
        f"Modbus register map of line {line.line!r}",
        "Addresses are 0-based (PDU); mbpoll -r takes 1-based references unless -0 is given.",
        "Holding registers (FC3) and input registers (FC4) hold the same values.",
        "",
    ]
    for machine in line.machines:
        out.append(f"machine {machine.name}: unit id {line.unit_id(machine)}")
        out.append(f"  {'table':<15} {'addr':>5} {'n':>2}  {'encoding':<14} {'name':<28} note")
        for e in machine_map(machine):
            name = f"{e.name} [{e.unit}]" if e.unit else e.name
            out.append(
                f"  {e.table:<15} {e.address:>5} {e.count:>2}  {e.encoding:<14} {name:<28} {e.note}"
            )
        out.append("")
    return "\n".join(out)
