"""Data types, byte orders and request planning (pure functions)."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.sources import modbus
from edge_agent.sources.modbus_codec import (
    BYTE_ORDERS,
    Function,
    TagSpec,
    decode,
    encode,
    plan_reads,
    register_count,
    registers_to_bytes,
)

HR = Function.HOLDING_REGISTERS


def test_byte_orders_of_a_known_float() -> None:
    # 123.456 as float32 is 0x42F6E979: A=42 B=F6 C=E9 D=79.
    assert struct.pack(">f", 123.456).hex() == "42f6e979"
    assert encode(123.456, "float32", "ABCD") == [0x42F6, 0xE979]
    assert encode(123.456, "float32", "CDAB") == [0xE979, 0x42F6]
    assert encode(123.456, "float32", "BADC") == [0xF642, 0x79E9]
    assert encode(123.456, "float32", "DCBA") == [0x79E9, 0xF642]
    for order in BYTE_ORDERS:
        assert decode(encode(123.456, "float32", order), "float32", order) == \
            pytest.approx(123.456, rel=1e-7)


def test_64_bit_word_order() -> None:
    raw = bytes(range(1, 9))  # A..H = 01..08
    assert registers_to_bytes([0x0102, 0x0304, 0x0506, 0x0708], "ABCD") == raw
    assert registers_to_bytes([0x0807, 0x0605, 0x0403, 0x0201], "DCBA") == raw
    assert registers_to_bytes([0x0201, 0x0403, 0x0605, 0x0807], "BADC") == raw
    assert registers_to_bytes([0x0708, 0x0506, 0x0304, 0x0102], "CDAB") == raw


@pytest.mark.parametrize("order", BYTE_ORDERS)
@given(value=st.integers(-(2**63), 2**63 - 1))
def test_int64_round_trips(order: str, value: int) -> None:
    assert decode(encode(value, "int64", order), "int64", order) == value


@pytest.mark.parametrize("order", BYTE_ORDERS)
@given(value=st.floats(allow_nan=False))
def test_float64_round_trips(order: str, value: float) -> None:
    assert decode(encode(value, "float64", order), "float64", order) == value


@pytest.mark.parametrize(("data_type", "value", "registers"), [
    ("int16", -2, [0xFFFE]), ("uint16", 65534, [0xFFFE]),
    ("int32", -2, [0xFFFF, 0xFFFE]), ("uint32", 4294967294, [0xFFFF, 0xFFFE]),
    ("bool", True, [1]), ("bool", False, [0]),
])
def test_integer_types(data_type: str, value: int, registers: list[int]) -> None:
    assert encode(value, data_type) == registers
    assert decode(registers, data_type) == value


def test_string_is_two_characters_per_register_and_strips_padding() -> None:
    regs = encode("P-1234", "string", "ABCD", length=5)
    assert regs == [0x502D, 0x3132, 0x3334, 0, 0]
    assert decode(regs, "string", "ABCD") == "P-1234"
    assert decode(encode("P-1234", "string", "BADC", length=4), "string", "BADC") == "P-1234"


def spec(key: int, address: int, data_type: str = "float32",
         function: Function = HR) -> TagSpec:
    return TagSpec(key, function, address, data_type)


def test_adjacent_registers_share_one_request() -> None:
    blocks = plan_reads([spec(0, 0), spec(1, 2), spec(2, 4, "int16"), spec(3, 5, "float64")])
    assert [(b.address, b.count) for b in blocks] == [(0, 9)]


def test_gap_splits_requests_unless_allowed() -> None:
    tags = [spec(0, 0), spec(1, 10)]
    assert [(b.address, b.count) for b in plan_reads(tags)] == [(0, 2), (10, 2)]
    assert [(b.address, b.count) for b in plan_reads(tags, max_gap=8)] == [(0, 12)]


def test_limit_of_125_registers_per_request() -> None:
    tags = [spec(i, 2 * i) for i in range(100)]  # 200 contiguous registers
    blocks = plan_reads(tags)
    assert [(b.address, b.count) for b in blocks] == [(0, 124), (124, 76)]
    assert sum(len(b.tags) for b in blocks) == 100
    # A value is never split across two requests.
    for b in blocks:
        assert all(b.address <= t.address and t.end <= b.address + b.count for t in b.tags)


def test_function_codes_are_planned_separately_and_bits_allow_2000() -> None:
    tags = [spec(0, 0), spec(1, 0, "bool", Function.COILS),
            *[spec(2 + i, i + 1, "bool", Function.COILS) for i in range(2500)],
            spec(9999, 0, "int16", Function.INPUT_REGISTERS)]
    blocks = plan_reads(tags)
    summary = [(b.function, b.address, b.count) for b in blocks]
    assert summary == [(Function.COILS, 0, 2000), (Function.COILS, 2000, 501),
                       (HR, 0, 2), (Function.INPUT_REGISTERS, 0, 1)]


def test_overlapping_tags_read_once_and_decode_each() -> None:
    blocks = plan_reads([spec(0, 0, "float32"), spec(1, 1, "uint16"), spec(2, 0, "uint16")])
    assert [(b.address, b.count) for b in blocks] == [(0, 2)]
    block = blocks[0]
    regs = [0x1111, 0x2222]
    assert {t.key: list(block.slice_for(t, regs)) for t in block.tags} == {
        0: [0x1111, 0x2222], 1: [0x2222], 2: [0x1111]}


def test_max_count_option_makes_smaller_requests() -> None:
    blocks = plan_reads([spec(i, 2 * i) for i in range(10)], max_count=8)
    assert [(b.address, b.count) for b in blocks] == [(0, 8), (8, 8), (16, 4)]


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(modbus._IN_PLACE)), st.integers(0, 5), st.data())
def test_numbers_read_in_place_are_those_decode_gives(
        kind: tuple[str, str], offset: int, data: st.DataObject) -> None:
    """`ModbusSource._read_block` reads big-endian numbers straight from the block's bytes."""
    data_type, order = kind
    width = register_count(data_type)
    words = data.draw(st.lists(st.integers(0, 0xFFFF), min_size=offset + width,
                               max_size=offset + width + 3))
    raw = struct.pack(f">{len(words)}H", *words)
    got = modbus._IN_PLACE[kind](raw, 2 * offset)[0]
    want = decode(words[offset:offset + width], data_type, order)
    assert got == want or (got != got and want != want)  # NaN
