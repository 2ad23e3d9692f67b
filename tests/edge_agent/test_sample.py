"""Sample: a tuple that is the buffer's row, with the fields and the contract of a sample."""

from __future__ import annotations

import json
import math
import pickle
from datetime import UTC, datetime, timedelta, timezone

from edge_agent.sources.base import Sample, checked

T = datetime(2026, 11, 24, 8, 0, 0, 123456, tzinfo=UTC)


def test_fields_and_the_row() -> None:
    s = Sample("bore", T, 25.0031, "uncertain", "P-7")
    assert (s.characteristic, s.ts, s.value, s.quality, s.part_id) == \
        ("bore", T, 25.0031, "uncertain", "P-7")
    assert s.ts.tzinfo is not None
    assert s.ts_us == (T - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    assert json.loads(json.dumps([s])) == [["bore", s.ts_us, 25.0031, "uncertain", "P-7"]]
    assert Sample.row(*s) == s and pickle.loads(pickle.dumps(s)) == s
    assert Sample("x", T, 1.0).quality == "good" and Sample("x", T, 1.0).part_id is None


def test_the_same_instant_is_the_same_sample() -> None:
    cet = T.astimezone(timezone(timedelta(hours=1)))
    assert Sample("a", cet, 1.0) == Sample("a", T, 1.0)
    assert Sample("a", T.replace(tzinfo=None), 1.0) == Sample("a", T, 1.0)  # naive is UTC


def test_of_keeps_the_contract() -> None:
    assert Sample.of("a", 2, "good", T) == Sample("a", T, 2.0, "good")
    assert Sample.of("a", 2.5, "bad", T) == Sample("a", T, None, "bad")  # bad: never a value
    assert Sample.of("a", None, "good", T).quality == "bad"
    for nonsense in (math.nan, math.inf, "abc", object()):
        assert Sample.of("a", nonsense, "good", T) == Sample("a", T, None, "bad")
    assert Sample.of("a", "1.5", "uncertain", T) == Sample("a", T, 1.5, "uncertain")
    assert checked("a", 3, "good", 17) == Sample.row("a", 17, 3.0, "good")
    assert abs(Sample.of("a", 1.0, "good").ts - datetime.now(UTC)) < timedelta(seconds=5)
