"""PostgreSQL's binary COPY format for `measurements` rows, encoded with numpy.

asyncpg encodes a COPY row by row, and each timestamp through Python (time-zone conversion and
arithmetic per value): a third of the server's CPU for a batch of plain variables data went
there. For the common rows, with no part id and no lot size, the four columns (characteristic,
ts, value, quality) have a fixed width, so a whole batch is two numpy record arrays (rows with a
value, and `bad` rows whose value is NULL) written out as one COPY stream. Format: PostgreSQL
documentation, "COPY", section "Binary Format" (header, then per row a field count and per field
a length, -1 for NULL, and the value in network byte order; timestamps as int64 microseconds
since 2000-01-01 UTC).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np

COLUMNS = ["characteristic_id", "ts", "value", "quality"]
HEADER = b"PGCOPY\n\xff\r\n\x00" + b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00"  # no OIDs, no ext.
TRAILER = b"\xff\xff"
PG_EPOCH_US = 946_684_800_000_000  # 2000-01-01T00:00:00Z in microseconds since the Unix epoch

_WITH_VALUE = np.dtype([("fields", ">i2"), ("cid_len", ">i4"), ("cid", ">i4"),
                        ("ts_len", ">i4"), ("ts", ">i8"), ("value_len", ">i4"),
                        ("value", ">f8"), ("quality_len", ">i4"), ("quality", ">i2")])
_NULL_VALUE = np.dtype([("fields", ">i2"), ("cid_len", ">i4"), ("cid", ">i4"),
                        ("ts_len", ">i4"), ("ts", ">i8"), ("value_len", ">i4"),
                        ("quality_len", ">i4"), ("quality", ">i2")])


def encode(rows: Sequence[tuple]) -> bytes | None:
    """COPY data for (characteristic_id, ts, value, quality, part_id, sample_size) rows with
    timezone-aware `ts`, into COLUMNS; None when a row has a part id or a lot size (those go
    through asyncpg's encoder, with all six columns)."""
    n = len(rows)
    if n == 0:
        return None
    cids, stamps, values, qualities, parts, sizes = zip(*rows, strict=True)
    if parts.count(None) != n or sizes.count(None) != n:
        return None
    # datetime.timestamp() is exact to the microsecond after rounding for any date before
    # the year 2200 (a float64 second count's spacing stays under 0.5 us until 2^33 s)
    us = np.rint(np.fromiter(map(datetime.timestamp, stamps), np.float64, n) * 1e6)
    value = np.array(values, dtype=np.float64)  # None -> NaN: NULL (values are finite)
    null = np.isnan(value)
    cid, quality = np.array(cids, dtype=np.int64), np.array(qualities, dtype=np.int16)
    parts_out = []
    for dtype, keep in ((_WITH_VALUE, ~null), (_NULL_VALUE, null)):
        count = int(keep.sum())
        if not count:
            continue
        out = np.empty(count, dtype)
        out["fields"] = 4
        out["cid_len"], out["ts_len"], out["quality_len"] = 4, 8, 2
        out["cid"] = cid[keep]
        out["ts"] = us[keep].astype(np.int64) - PG_EPOCH_US
        out["quality"] = quality[keep]
        if dtype is _WITH_VALUE:
            out["value_len"], out["value"] = 8, value[keep]
        else:
            out["value_len"] = -1
        parts_out.append(out.tobytes())
    return b"".join([HEADER, *parts_out, TRAILER])
