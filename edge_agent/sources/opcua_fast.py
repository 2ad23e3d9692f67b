"""A fast path for the one hot message of an OPC UA subscription: the PublishResponse carrying a
DataChangeNotification.

asyncua decodes every notification into half a dozen Python objects (MonitoredItemNotification,
DataValue, Variant, StatusCode, datetimes), explodes them into events, queues them, and the
source then turns each into a Sample: at 10,000 values a second that was half of the agent's
CPU. Here the bytes of such a response are read straight into Samples, for the values SPC
reads (scalar numbers, booleans, no value), and anything else falls back to asyncua's own
decoder:

- a value of any other kind (a string, an array, a structure...) or a DataValue with
  picoseconds: that one DataValue is decoded by asyncua and turned into a Sample by the very
  function the generic path uses (`sample_from`);
- anything unexpected in the message itself (another subscription, a StatusChangeNotification,
  events, diagnostics, an unknown client handle, a length that does not add up): `decode`
  returns None and the whole message goes through asyncua unchanged.

`tests/edge_agent/test_opcua_fast.py` checks, on generated messages encoded by asyncua, that
the samples are exactly those of the generic path (`sample_from` over asyncua's decoding).
"""

from __future__ import annotations

import math
import struct
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from asyncua import ua
from asyncua.common.utils import Buffer
from asyncua.ua.ua_binary import struct_from_binary

from edge_agent.sources.base import Sample, to_us

_u8 = struct.Struct("<B").unpack_from
_u16 = struct.Struct("<H").unpack_from
_u32 = struct.Struct("<I").unpack_from
_i32 = struct.Struct("<i").unpack_from
_i64 = struct.Struct("<q").unpack_from
# Response header after its Timestamp: RequestHandle, ServiceResult, ServiceDiagnostics mask.
_HEADER = struct.Struct("<qIIB").unpack_from

_PUBLISH_RESPONSE = ua.ObjectIds.PublishResponse_Encoding_DefaultBinary
_DATA_CHANGE = ua.ObjectIds.DataChangeNotification_Encoding_DefaultBinary

# Variant type id -> (unpack_from, size) for the scalars decoded here; 0 is Null (no value).
_SCALARS: dict[int, tuple[Callable[[bytes, int], tuple[object, ...]], int]] = {
    code: (struct.Struct("<" + fmt).unpack_from, struct.calcsize("<" + fmt))
    for code, fmt in {1: "?", 2: "b", 3: "B", 4: "h", 5: "H", 6: "i", 7: "I", 8: "q", 9: "Q",
                      10: "f", 11: "d"}.items()}

_FILETIME_EPOCH = ua.uatypes.FILETIME_EPOCH_AS_UTC_DATETIME
_MAX_FILETIME = ua.uatypes.MAX_OPC_FILETIME
_isfinite = math.isfinite
_UNIX_AFTER_FILETIME_US = to_us(_FILETIME_EPOCH) * -1
_new = tuple.__new__  # Sample.row without the call: (characteristic, ts_us, value, quality,
#                       part_id)


class Unexpected(Exception):
    """The message is not one this decoder handles: decode it the generic way."""


def _ts(ticks: int) -> datetime:
    # as asyncua's win_epoch_to_datetime, with its out-of-range cases handed to it
    if 0 <= ticks < _MAX_FILETIME:
        return _FILETIME_EPOCH + timedelta(microseconds=ticks // 10)
    return ua.win_epoch_to_datetime(ticks)


def _us(ticks: int) -> int:
    """A DateTime (100 ns since 1601) as Sample.ts_us: microseconds since 1970, the value
    asyncua's datetime gives, computed without making one."""
    if 0 <= ticks < _MAX_FILETIME:
        return ticks // 10 - _UNIX_AFTER_FILETIME_US
    return to_us(ua.win_epoch_to_datetime(ticks))


def decode(raw: bytes, subscription_id: int, characteristics: Mapping[int, str],
           sample_from: Callable[[str, ua.DataValue], Sample]
           ) -> tuple[ua.PublishResponse, list[Sample]] | None:
    """Decode a PublishResponse (`raw` starts at its type id) of subscription
    `subscription_id` whose notifications are data changes of the client handles in
    `characteristics`. Returns the response with each DataChangeNotification's items taken out
    (turned into the samples returned beside it), or None when the message must be decoded
    the generic way."""
    try:
        return _decode(raw, subscription_id, characteristics, sample_from)
    except (Unexpected, struct.error, IndexError, KeyError):
        return None


def _decode(raw: bytes, subscription_id: int, characteristics: Mapping[int, str],
            sample_from: Callable[[str, ua.DataValue], Sample]
            ) -> tuple[ua.PublishResponse, list[Sample]]:
    # type id: a four-byte node id in namespace 0
    if raw[0] != 1 or raw[1] != 0 or _u16(raw, 2)[0] != _PUBLISH_RESPONSE:
        raise Unexpected
    p = 4
    stamp, handle, service_result, diagnostics = _HEADER(raw, p)
    p += 17
    if service_result != 0 or diagnostics != 0:
        raise Unexpected
    (strings,) = _i32(raw, p)
    p += 4
    # no string table; an empty additional header (a null two-byte node id, no body)
    if strings > 0 or raw[p] != 0 or raw[p + 1] != 0 or raw[p + 2] != 0:
        raise Unexpected
    p += 3
    (sub_id,) = _u32(raw, p)
    if sub_id != subscription_id:
        raise Unexpected
    p += 4
    (n,) = _i32(raw, p)
    p += 4
    available = [_u32(raw, p + 4 * i)[0] for i in range(max(n, 0))]
    p += 4 * max(n, 0)
    more = raw[p]
    (sequence,) = _u32(raw, p + 1)
    (publish_time,) = _i64(raw, p + 5)
    (count,) = _i32(raw, p + 13)
    p += 17
    notifications: list[ua.ExtensionObject] = []
    samples: list[Sample] = []
    for _ in range(max(count, 0)):
        if raw[p] != 1 or raw[p + 1] != 0 or _u16(raw, p + 2)[0] != _DATA_CHANGE \
                or raw[p + 4] != 1:
            raise Unexpected  # not a DataChangeNotification with a body
        (length,) = _i32(raw, p + 5)
        p += 9
        end = p + length
        p = _items(raw, p, end, characteristics, sample_from, samples)
        (diag,) = _i32(raw, p)
        if diag > 0 or p + 4 != end:
            raise Unexpected
        p = end
        notifications.append(ua.DataChangeNotification(MonitoredItems=[]))
    (results,) = _i32(raw, p)
    p += 4
    codes = [ua.StatusCode(_u32(raw, p + 4 * i)[0]) for i in range(max(results, 0))]
    p += 4 * max(results, 0)
    (diag,) = _i32(raw, p)
    if diag > 0 or p + 4 != len(raw):
        raise Unexpected
    response = ua.PublishResponse()
    response.ResponseHeader.Timestamp = _ts(stamp)
    response.ResponseHeader.RequestHandle = handle
    response.Parameters = ua.PublishResult(
        SubscriptionId=sub_id, AvailableSequenceNumbers=available, MoreNotifications=bool(more),
        NotificationMessage=ua.NotificationMessage(
            SequenceNumber=sequence, PublishTime=_ts(publish_time),
            NotificationData=notifications),  # type: ignore[arg-type]
        Results=codes)
    return response, samples


def _items(raw: bytes, p: int, end: int, characteristics: Mapping[int, str],
           sample_from: Callable[[str, ua.DataValue], Sample], out: list[Sample]) -> int:
    """Append the samples of a DataChangeNotification's MonitoredItems; returns the position
    after them."""
    (n,) = _i32(raw, p)
    p += 4
    append = out.append
    scalars = _SCALARS
    for _ in range(max(n, 0)):
        (handle,) = _u32(raw, p)
        characteristic = characteristics[handle]  # KeyError: unknown handle -> generic
        start = p + 4
        mask = raw[start]
        p = start + 1
        value: object = None
        if mask & 0xF0:  # picoseconds (or bits asyncua does not know): asyncua decodes it
            p = _generic(raw, start, end, characteristic, sample_from, append)
            continue
        if mask & 1:
            vtype = raw[p]
            if vtype == 0:
                p += 1
            else:
                scalar = scalars.get(vtype)
                if scalar is None:  # a string, an array, a structure...
                    p = _generic(raw, start, end, characteristic, sample_from, append)
                    continue
                value = scalar[0](raw, p + 1)[0]
                p += 1 + scalar[1]
        status = 0
        if mask & 2:
            (status,) = _u32(raw, p)
            p += 4
        # the source's timestamp, else the server's, else now (as sample_from)
        if mask & 4:
            (ticks,) = _i64(raw, p)
            p += 8
            ts = ticks // 10 - _UNIX_AFTER_FILETIME_US if 0 <= ticks < _MAX_FILETIME \
                else _us(ticks)
            if mask & 8:
                p += 8
        elif mask & 8:
            (ticks,) = _i64(raw, p)
            p += 8
            ts = _us(ticks)
        else:
            ts = time.time_ns() // 1000
        if p > end:
            raise Unexpected
        # as Sample.of: bad status, no value, or a number JSON cannot carry -> bad, no value
        severity = status >> 30
        if severity >= 2 or value is None:
            append(_new(Sample, (characteristic, ts, None, "bad", None)))
            continue
        number = float(value)  # type: ignore[arg-type]
        if not _isfinite(number):
            append(_new(Sample, (characteristic, ts, None, "bad", None)))
        else:
            append(_new(Sample, (characteristic, ts, number,
                                "good" if severity == 0 else "uncertain", None)))
    return p


def _generic(raw: bytes, start: int, end: int, characteristic: str,
             sample_from: Callable[[str, ua.DataValue], Sample],
             append: Callable[[Sample], None]) -> int:
    """One DataValue at `start` decoded by asyncua; returns the position after it."""
    buf = Buffer(raw, start, end - start)
    dv = struct_from_binary(ua.DataValue, buf)
    append(sample_from(characteristic, dv))
    return buf.cur_pos
