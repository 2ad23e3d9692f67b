"""The buffer contract, one test class run against every implementation."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from edge_agent.buffer import Batch, Buffer, MemoryBuffer, SqliteBuffer
from edge_agent.sources.base import Sample

T0 = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)


def samples(n: int, start: int = 0, name: str = "bore_diameter") -> list[Sample]:
    return [Sample(name, T0 + timedelta(milliseconds=i), float(i), "good", None)
            for i in range(start, start + n)]


def values(batch_samples: list[Sample]) -> list[float | None]:
    return [s.value for s in batch_samples]


class BufferContract:
    """Every buffer implementation must pass these; subclasses say how to make one."""

    def make(self, tmp_path: Path, max_samples: int = 1000) -> Buffer:
        raise NotImplementedError

    def test_empty_buffer_has_no_batch(self, tmp_path: Path) -> None:
        buf = self.make(tmp_path)
        assert buf.next_batch(10) is None
        assert buf.depth == 0 and buf.dropped == 0

    def test_batches_come_out_oldest_first_and_complete(self, tmp_path: Path) -> None:
        buf = self.make(tmp_path)
        buf.append(samples(25))
        seen: list[float | None] = []
        while (batch := buf.next_batch(10)) is not None:
            assert len(batch.samples) <= 10
            seen += values(batch.samples)
            assert buf.ack(batch.key) == len(batch.samples)
        assert seen == [float(i) for i in range(25)]
        assert buf.depth == 0

    def test_sample_fields_round_trip(self, tmp_path: Path) -> None:
        buf = self.make(tmp_path)
        original = [Sample("a", T0 + timedelta(microseconds=123456), 1.5, "uncertain", "P-7"),
                    Sample("b", T0, None, "bad", None)]
        buf.append(original)
        batch = buf.next_batch(10)
        assert batch is not None and batch.samples == original

    def test_unacknowledged_batch_is_offered_again_with_the_same_key(self, tmp_path: Path) -> None:
        buf = self.make(tmp_path)
        buf.append(samples(5))
        first = buf.next_batch(3)
        buf.append(samples(5, start=5))
        again = buf.next_batch(3)
        assert first is not None and again is not None
        assert again.key == first.key and again.samples == first.samples

    def test_a_batch_can_be_formed_ahead_of_the_one_in_flight(self, tmp_path: Path) -> None:
        buf = self.make(tmp_path)
        buf.append(samples(10))
        first = buf.next_batch(4)
        assert first is not None
        ahead = buf.next_batch(4, exclude=first.key)
        assert ahead is not None and ahead.key != first.key
        assert values(ahead.samples) == [4.0, 5.0, 6.0, 7.0]
        again = buf.next_batch(4)  # the one in flight failed: it comes first again
        assert again is not None and again.key == first.key
        buf.ack(first.key)
        after = buf.next_batch(4)
        assert after is not None and after.key == ahead.key and after.samples == ahead.samples

    def test_ack_deletes_exactly_that_batch(self, tmp_path: Path) -> None:
        buf = self.make(tmp_path)
        buf.append(samples(10))
        batch = buf.next_batch(4)
        assert batch is not None
        assert buf.ack(batch.key) == 4
        assert buf.depth == 6
        assert buf.ack(batch.key) == 0  # a second ack of the same key deletes nothing
        rest = buf.next_batch(100)
        assert rest is not None and values(rest.samples) == [float(i) for i in range(4, 10)]

    def test_bound_drops_oldest_and_counts_them(self, tmp_path: Path) -> None:
        buf = self.make(tmp_path, max_samples=10)
        buf.append(samples(8))
        buf.append(samples(5, start=8))
        assert buf.depth == 10 and buf.dropped == 3
        batch = buf.next_batch(100)
        assert batch is not None and values(batch.samples) == [float(i) for i in range(3, 13)]

    def test_bound_keeps_the_batch_in_flight_whole(self, tmp_path: Path) -> None:
        buf = self.make(tmp_path, max_samples=10)
        buf.append(samples(10))
        in_flight = buf.next_batch(4)
        assert in_flight is not None
        buf.append(samples(3, start=10))
        assert buf.dropped == 3 and buf.depth == 10
        again = buf.next_batch(4)
        assert again is not None and again.samples == in_flight.samples
        buf.ack(in_flight.key)
        rest = buf.next_batch(100)
        assert rest is not None and values(rest.samples) == [7.0, 8.0, 9.0, 10.0, 11.0, 12.0]

    def test_drops_noted_from_outside_are_counted(self, tmp_path: Path) -> None:
        buf = self.make(tmp_path)
        buf.note_dropped(4)  # e.g. shed by the writer while the buffer could not be written
        buf.append(samples(2))
        assert buf.dropped == 4 and buf.depth == 2

    def test_quarantine_removes_the_batch_and_counts_it(self, tmp_path: Path) -> None:
        buf = self.make(tmp_path)
        buf.append(samples(6))
        batch = buf.next_batch(4)
        assert batch is not None
        assert buf.quarantine(batch.key, "HTTP 400: unknown characteristic") == 4
        assert buf.quarantined == 4 and buf.depth == 2
        nxt = buf.next_batch(10)
        assert nxt is not None and nxt.key != batch.key and values(nxt.samples) == [4.0, 5.0]

    def test_release_quarantines_named_samples_and_requeues_the_rest(
            self, tmp_path: Path) -> None:
        buf = self.make(tmp_path)
        buf.append(samples(8))
        batch = buf.next_batch(5)
        assert batch is not None
        assert buf.release(batch.key, [1, 3], "unknown characteristic") == 3
        assert buf.quarantined == 2 and buf.depth == 6
        again = buf.next_batch(100)
        assert again is not None and again.key != batch.key
        assert values(again.samples) == [0.0, 2.0, 4.0, 5.0, 6.0, 7.0]

    def test_release_without_quarantine_splits_a_batch(self, tmp_path: Path) -> None:
        buf = self.make(tmp_path)
        buf.append(samples(6))
        batch = buf.next_batch(6)
        assert batch is not None and buf.release(batch.key) == 6
        smaller = buf.next_batch(3)
        assert smaller is not None and values(smaller.samples) == [0.0, 1.0, 2.0]


    def test_a_batch_without_its_samples_names_the_same_samples(self, tmp_path: Path) -> None:
        buf = self.make(tmp_path)
        original = [*samples(5), Sample("b", T0, None, "bad", "P-1")]
        buf.append(original)
        light = buf.next_batch(4, load=False)
        assert light is not None and light.samples == [] and light.size == 4
        assert buf.load(light.key) == original[:4]
        full = Batch(light.key, original[:4])
        assert json.loads(buf.batch_json(light)) == json.loads(Buffer.batch_json(buf, full))
        again = buf.next_batch(4, load=False)  # not acknowledged: offered again, same size
        assert again is not None and again.key == light.key and again.size == 4
        ahead = buf.next_batch(4, exclude=light.key, load=False)
        assert ahead is not None and ahead.size == 2 and buf.load(ahead.key) == original[4:]
        assert buf.ack(light.key) == 4 and buf.load(light.key) == []
        assert buf.next_batch(4, exclude=ahead.key, load=False) is None


class TestMemoryBuffer(BufferContract):
    def make(self, tmp_path: Path, max_samples: int = 1000) -> Buffer:
        return MemoryBuffer(max_samples)


class TestSqliteBuffer(BufferContract):
    def make(self, tmp_path: Path, max_samples: int = 1000) -> Buffer:
        return SqliteBuffer(tmp_path / "buffer.sqlite", max_samples)

    def reopen(self, buffer: Buffer, tmp_path: Path, max_samples: int = 1000) -> Buffer:
        buffer.close()
        return SqliteBuffer(tmp_path / "buffer.sqlite", max_samples)

    def test_survives_reopen(self, tmp_path: Path) -> None:
        buf = self.make(tmp_path, max_samples=10)
        buf.append(samples(12))
        pending = buf.next_batch(4)
        assert pending is not None
        buf2 = self.reopen(buf, tmp_path, max_samples=10)
        assert buf2.depth == 10 and buf2.dropped == 2
        again = buf2.next_batch(4)
        assert again is not None and again.key == pending.key and again.samples == pending.samples
        buf2.ack(again.key)
        rest = buf2.next_batch(100)
        assert rest is not None and values(rest.samples) == [float(i) for i in range(6, 12)]

    def test_uses_wal(self, tmp_path: Path) -> None:
        import sqlite3

        buf = self.make(tmp_path)
        buf.append(samples(1))
        mode = sqlite3.connect(tmp_path / "buffer.sqlite").execute("PRAGMA journal_mode"
                                                                   ).fetchone()[0]
        assert mode == "wal"


def test_sqlite_batch_json_round_trips_every_value_exactly(tmp_path: Path) -> None:
    import json
    import random
    import struct

    # Any double a measurement can be (|x| from 1e-30 to 1e31; SQLite's printf is not correctly
    # rounded at extreme exponents such as 1e276), float32 readings, and awkward decimals.
    rng = random.Random(3)
    vals = [rng.choice((1, -1)) * rng.uniform(1, 10) * 10.0 ** rng.randint(-30, 30)
            for _ in range(3000)]
    vals += [struct.unpack(">f", struct.pack(">f", rng.gauss(100, 5)))[0] for _ in range(1000)]
    vals += [0.1, 25.001234567890123, -0.0, 1e-300]
    buf = SqliteBuffer(tmp_path / "b.sqlite", 100_000)
    buf.append([Sample("x", T0 + timedelta(microseconds=i), v, "good", None)
                for i, v in enumerate(vals)])
    batch = buf.next_batch(100_000)
    assert batch is not None
    assert [s.value for s in batch.samples] == vals
    sent = json.loads(buf.batch_json(batch))
    assert [s["value"] for s in sent] == vals
    assert sent[1]["ts"] == "2026-11-24T08:00:00.000Z"
