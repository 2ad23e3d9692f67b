"""The fast decoder of data-change PublishResponses against asyncua's own decoder.

Messages are built and encoded by asyncua (`struct_to_binary`), decoded both ways, and must give
exactly the same samples: those `sample_from` makes of asyncua's decoding, the generic path of
the source. Anything the fast decoder does not take must be refused (None), never guessed.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from asyncua import ua
from asyncua.common.utils import Buffer
from asyncua.ua.ua_binary import struct_from_binary, struct_to_binary
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_agent.sources import opcua_fast
from edge_agent.sources.base import Sample
from edge_agent.sources.opcua import sample_from

SUB = 7
CHARS = {h: f"c{h}" for h in range(1, 40)}

# asyncua's datetimes: aware UTC, whole microseconds, from 1601 on (FILETIME)
datetimes = st.datetimes(min_value=datetime(1601, 1, 2), max_value=datetime(9999, 12, 30),
                         timezones=st.just(UTC))
status_codes = st.sampled_from([
    0, ua.StatusCodes.GoodClamped, ua.StatusCodes.UncertainLastUsableValue,
    ua.StatusCodes.UncertainSensorNotAccurate, ua.StatusCodes.BadSensorFailure,
    ua.StatusCodes.BadCommunicationError, ua.StatusCodes.BadNoCommunication, 0xC0000000])
floats = st.floats(allow_nan=True, allow_infinity=True)
variants = st.one_of(
    st.builds(lambda v: ua.Variant(v, ua.VariantType.Double), floats),
    st.builds(lambda v: ua.Variant(v, ua.VariantType.Float), st.floats(width=32)),
    st.builds(lambda v: ua.Variant(v, ua.VariantType.Boolean), st.booleans()),
    st.builds(lambda v: ua.Variant(v, ua.VariantType.SByte), st.integers(-128, 127)),
    st.builds(lambda v: ua.Variant(v, ua.VariantType.Byte), st.integers(0, 255)),
    st.builds(lambda v: ua.Variant(v, ua.VariantType.Int16), st.integers(-2**15, 2**15 - 1)),
    st.builds(lambda v: ua.Variant(v, ua.VariantType.UInt16), st.integers(0, 2**16 - 1)),
    st.builds(lambda v: ua.Variant(v, ua.VariantType.Int32), st.integers(-2**31, 2**31 - 1)),
    st.builds(lambda v: ua.Variant(v, ua.VariantType.UInt32), st.integers(0, 2**32 - 1)),
    st.builds(lambda v: ua.Variant(v, ua.VariantType.Int64), st.integers(-2**63, 2**63 - 1)),
    st.builds(lambda v: ua.Variant(v, ua.VariantType.UInt64), st.integers(0, 2**64 - 1)),
    # the generic fallback, per value: text (a number or not), arrays, no value
    st.builds(lambda v: ua.Variant(v, ua.VariantType.String),
              st.one_of(st.text(max_size=8), floats.map(repr))),
    st.builds(lambda v: ua.Variant(v, ua.VariantType.Double), st.lists(floats, max_size=3)),
    st.just(ua.Variant()),
)


@st.composite
def data_values(draw: st.DrawFn) -> ua.DataValue:
    dv = ua.DataValue(draw(variants))
    if draw(st.booleans()):
        dv.StatusCode = ua.StatusCode(draw(status_codes))
    if draw(st.booleans()):
        dv.SourceTimestamp = draw(datetimes)
    if draw(st.booleans()):
        dv.ServerTimestamp = draw(datetimes)
    if draw(st.integers(0, 9)) == 0:
        dv.SourcePicoseconds = draw(st.integers(0, 9999))
    if draw(st.integers(0, 9)) == 0:
        dv.ServerPicoseconds = draw(st.integers(0, 9999))
    if draw(st.integers(0, 9)) == 0:
        dv.Value = None  # encoded without a value
    return dv


def encode(items: list[ua.MonitoredItemNotification], *, sub: int = SUB, seq: int = 5,
           available: list[int] | None = None, notifications: int = 1,
           extra: list[ua.ExtensionObject] | None = None) -> bytes:
    response = ua.PublishResponse()
    response.ResponseHeader.Timestamp = datetime(2026, 11, 24, 12, tzinfo=UTC)
    response.ResponseHeader.RequestHandle = 42
    response.Parameters.SubscriptionId = sub
    response.Parameters.AvailableSequenceNumbers = available or [seq]
    response.Parameters.MoreNotifications = False
    response.Parameters.NotificationMessage.SequenceNumber = seq
    response.Parameters.NotificationMessage.PublishTime = datetime(2026, 11, 24, 12,
                                                                   tzinfo=UTC)
    data = [ua.DataChangeNotification(MonitoredItems=items) for _ in range(notifications)]
    response.Parameters.NotificationMessage.NotificationData = [*data, *(extra or [])]
    response.Parameters.Results = [ua.StatusCode(0)]
    return struct_to_binary(response)


def generic(raw: bytes) -> tuple[ua.PublishResponse, list[Sample]]:
    response = struct_from_binary(ua.PublishResponse, Buffer(raw))
    samples = [sample_from(CHARS[item.ClientHandle], item.Value)
               for notification in response.Parameters.NotificationMessage.NotificationData
               for item in notification.MonitoredItems]
    return response, samples


def same(a: list[Sample], b: list[Sample]) -> bool:
    """Equal, with the arrival time standing in for a missing timestamp allowed to differ."""
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if (x.characteristic, x.quality, x.part_id) != (y.characteristic, y.quality, y.part_id):
            return False
        if not (x.value == y.value or (x.value is None and y.value is None)):
            return False
        if x.ts != y.ts and abs(x.ts - y.ts) > timedelta(seconds=5):
            return False
    return True


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(sorted(CHARS)), data_values()), max_size=30),
       st.integers(1, 2))
def test_samples_are_exactly_those_of_the_generic_decoder(
        items: list[tuple[int, ua.DataValue]], notifications: int) -> None:
    raw = encode([ua.MonitoredItemNotification(ClientHandle=h, Value=dv) for h, dv in items],
                 notifications=notifications)
    expected_response, expected = generic(raw)
    fast = opcua_fast.decode(raw, SUB, CHARS, sample_from)
    assert fast is not None
    response, samples = fast
    assert same(samples, expected), (samples, expected)
    # exact where the source's timestamp or the server's was sent
    for s, dv in zip(samples, [dv for _ in range(notifications) for _, dv in items], strict=True):
        if dv.SourceTimestamp or dv.ServerTimestamp:
            assert s.ts == (dv.SourceTimestamp or dv.ServerTimestamp)
        if s.value is not None:
            assert math.isfinite(s.value) and s.quality != "bad"
        if dv.StatusCode is not None and dv.StatusCode.is_bad():
            assert s.value is None and s.quality == "bad"  # never a value with a Bad status
    got, want = response.Parameters, expected_response.Parameters
    assert got.SubscriptionId == want.SubscriptionId
    assert got.AvailableSequenceNumbers == want.AvailableSequenceNumbers
    assert got.MoreNotifications == want.MoreNotifications
    assert got.Results == want.Results
    assert got.NotificationMessage.SequenceNumber == want.NotificationMessage.SequenceNumber
    assert got.NotificationMessage.PublishTime == want.NotificationMessage.PublishTime
    # the notifications stay (acknowledged as usual), emptied of the items turned into samples
    assert [type(n) for n in got.NotificationMessage.NotificationData] == \
        [type(n) for n in want.NotificationMessage.NotificationData]
    assert all(n.MonitoredItems == [] for n in got.NotificationMessage.NotificationData)


def test_exact_values_and_qualities() -> None:
    t = datetime(2026, 11, 24, 8, 0, 0, 123456, tzinfo=UTC)
    items = [
        (1, ua.DataValue(ua.Variant(0.1 + 0.2, ua.VariantType.Double), SourceTimestamp=t)),
        (2, ua.DataValue(ua.Variant(25.0031, ua.VariantType.Double),
                         StatusCode=ua.StatusCode(ua.StatusCodes.BadSensorFailure),
                         SourceTimestamp=t)),
        (3, ua.DataValue(ua.Variant(7, ua.VariantType.Int32),
                         StatusCode=ua.StatusCode(ua.StatusCodes.UncertainLastUsableValue),
                         ServerTimestamp=t)),
        (4, ua.DataValue(ua.Variant(math.nan, ua.VariantType.Double), SourceTimestamp=t)),
    ]
    raw = encode([ua.MonitoredItemNotification(ClientHandle=h, Value=dv) for h, dv in items])
    fast = opcua_fast.decode(raw, SUB, CHARS, sample_from)
    assert fast is not None
    assert fast[1] == [Sample("c1", t, 0.30000000000000004, "good"),
                       Sample("c2", t, None, "bad"),
                       Sample("c3", t, 7.0, "uncertain"),
                       Sample("c4", t, None, "bad")]


def item(h: int = 1) -> ua.MonitoredItemNotification:
    return ua.MonitoredItemNotification(ClientHandle=h, Value=ua.DataValue(ua.Variant(1.5)))


@pytest.mark.parametrize("raw", [
    pytest.param(encode([item()], sub=SUB + 1), id="another subscription"),
    pytest.param(encode([item(999)]), id="unknown client handle"),
    pytest.param(encode([item()], extra=[ua.StatusChangeNotification(
        Status=ua.StatusCode(ua.StatusCodes.BadTimeout))]), id="status change"),
    pytest.param(encode([], notifications=0, extra=[ua.EventNotificationList()]), id="events"),
    pytest.param(encode([item()])[:-3], id="truncated"),
    pytest.param(encode([item()]) + b"\0", id="trailing bytes"),
    pytest.param(b"", id="empty"),
])
def test_anything_else_is_left_to_asyncua(raw: bytes) -> None:
    assert opcua_fast.decode(raw, SUB, CHARS, sample_from) is None


def test_a_keep_alive_has_no_samples() -> None:
    raw = encode([], notifications=0)
    fast = opcua_fast.decode(raw, SUB, CHARS, sample_from)
    assert fast is not None and fast[1] == []
    assert fast[0].Parameters.NotificationMessage.NotificationData == []
