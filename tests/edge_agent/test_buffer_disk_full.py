"""The SQLite buffer when the disk is full.

Two ways to be full: `PRAGMA max_page_count` makes SQLite answer SQLITE_FULL as soon as the
database would grow (the data does not fit; the WAL has room), and a real tmpfs of a few hundred
KiB (root only) where the WAL, the database and the reserve file compete for the last bytes.
Either way: the write succeeds after the oldest samples are dropped, every sample is accounted
for (acknowledged + buffered + dropped = appended), and the dropped count is in the file."""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge_agent.buffer import SqliteBuffer, is_disk_full
from edge_agent.sources.base import Sample

T0 = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)


def samples(n: int, start: int = 0) -> list[Sample]:
    return [Sample("bore_diameter", T0 + timedelta(milliseconds=i), float(i), "good", None)
            for i in range(start, start + n)]


def capped(path: Path, pages: int, max_samples: int = 1_000_000) -> SqliteBuffer:
    """A buffer whose database cannot grow beyond `pages` pages: a full disk for the data."""
    buf = SqliteBuffer(path, max_samples, reserve_bytes=0)
    buf._db.execute(f"PRAGMA max_page_count={pages}")
    return buf


def saved(path: Path) -> tuple[int, int, list[float]]:
    """(dropped, depth, values) as stored in the file."""
    db = sqlite3.connect(path)
    try:
        dropped = db.execute("SELECT value FROM counters WHERE name='dropped'").fetchone()[0]
        values = [r[0] for r in db.execute("SELECT value FROM samples ORDER BY id")]
    finally:
        db.close()
    return dropped, len(values), values


def test_full_database_drops_the_oldest_and_counts_them(tmp_path: Path) -> None:
    buf = capped(tmp_path / "b.sqlite", 40)
    appended = 0
    for _ in range(100):
        buf.append(samples(50, start=appended))  # never raises: room is made
        appended += 50
    assert buf.dropped > 0
    assert buf.depth + buf.dropped == appended
    dropped, depth, values = saved(tmp_path / "b.sqlite")
    assert (dropped, depth) == (buf.dropped, buf.depth)
    # the oldest went: what is left is one run of the newest
    assert values == [float(i) for i in range(appended - depth, appended)]
    buf.close()


def test_batches_are_formed_and_acknowledged_on_a_full_database(tmp_path: Path) -> None:
    buf = capped(tmp_path / "b.sqlite", 30)
    appended = acked = 0
    for _ in range(60):
        buf.append(samples(40, start=appended))
        appended += 40
        batch = buf.next_batch(500)
        if batch is not None:
            acked += buf.ack(batch.key)
    while (batch := buf.next_batch(500)) is not None:
        acked += buf.ack(batch.key)
    assert buf.depth == 0
    assert acked + buf.dropped == appended
    assert saved(tmp_path / "b.sqlite")[:2] == (buf.dropped, 0)


def test_a_batch_dropped_on_its_way_and_then_acknowledged_is_not_counted_as_dropped(
        tmp_path: Path) -> None:
    buf = capped(tmp_path / "b.sqlite", 1_000_000)
    buf.append(samples(300))
    batch = buf.next_batch(300)
    assert batch is not None and len(batch.samples) == 300
    # the disk fills while the batch is on the wire: making room drops the whole batch
    pages = buf._db.execute("PRAGMA page_count").fetchone()[0]
    buf._db.execute(f"PRAGMA max_page_count={pages}")
    buf.append(samples(200, start=300))
    assert buf.dropped == 300 and buf.depth == 200
    again = buf.next_batch(500)
    assert again is not None and again.key != batch.key  # gone from the buffer
    assert buf.ack(batch.key) == 0  # the server stored it after all
    assert buf.dropped == 0
    assert saved(tmp_path / "b.sqlite")[0] == 0
    assert buf.ack(again.key) == 200


def test_the_error_is_the_full_disk_when_no_room_can_be_made(tmp_path: Path) -> None:
    buf = capped(tmp_path / "b.sqlite", 1_000_000)
    pages = buf._db.execute("PRAGMA page_count").fetchone()[0]
    buf._db.execute(f"PRAGMA max_page_count={pages}")  # full, and nothing to drop
    with pytest.raises(sqlite3.OperationalError) as info:
        buf.append(samples(5000))
    # not "cannot rollback - no transaction is active", which used to hide it
    assert is_disk_full(info.value), info.value
    assert buf.depth == 0 and buf.dropped == 0
    buf._db.execute("PRAGMA max_page_count=1000000")  # space again: the buffer works
    buf.append(samples(5))
    assert buf.depth == 5


def test_drops_noted_by_the_writer_are_saved_with_the_next_write(tmp_path: Path) -> None:
    buf = SqliteBuffer(tmp_path / "b.sqlite", 1000)
    buf.note_dropped(7)
    assert buf.dropped == 7
    assert saved(tmp_path / "b.sqlite")[0] == 0
    buf.append(samples(1))
    assert saved(tmp_path / "b.sqlite")[0] == 7
    buf.note_dropped(2)
    buf.close()  # saved at close too
    assert saved(tmp_path / "b.sqlite")[0] == 9
    assert SqliteBuffer(tmp_path / "b.sqlite", 1000).dropped == 9


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=384k", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def usage(mnt: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in mnt.iterdir()}


def test_on_a_real_full_filesystem_nothing_is_lost_uncounted(tiny_fs: Path) -> None:
    """More data than the 384 KiB filesystem holds, in small commits with a slow uploader."""
    buf = SqliteBuffer(tiny_fs / "b.sqlite", 1_000_000)
    assert (tiny_fs / "b.sqlite-reserve").exists()
    appended = acked = 0
    for i in range(2000):
        buf.append(samples(10, start=appended))  # never raises
        appended += 10
        if i % 10 == 0 and (batch := buf.next_batch(50)) is not None:
            acked += buf.ack(batch.key)
    assert buf.dropped > 0
    assert acked + buf.depth + buf.dropped == appended
    dropped, depth, values = saved(tiny_fs / "b.sqlite")
    assert (dropped, depth) == (buf.dropped, buf.depth)
    assert values == sorted(values)  # the oldest went, order kept
    while (batch := buf.next_batch(50)) is not None:
        acked += buf.ack(batch.key)
    assert acked + buf.dropped == appended
    # drained: the freed pages went back to the filesystem and the WAL was truncated
    sizes = usage(tiny_fs)
    assert sizes["b.sqlite"] <= 64 * 1024, sizes
    assert sizes.get("b.sqlite-wal", 0) == 0, sizes
    assert (tiny_fs / "b.sqlite-reserve").exists(), sizes
    buf.close()


def test_a_filesystem_filled_by_someone_else(tiny_fs: Path) -> None:
    """Another file takes every free byte: the buffer lives on its reserve and own pages."""
    buf = SqliteBuffer(tiny_fs / "b.sqlite", 1_000_000)
    buf.append(samples(100))
    with open(tiny_fs / "filler", "wb", buffering=0) as f:
        while True:
            try:
                f.write(bytes(4096))
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                break
    appended = 100
    for _ in range(300):
        buf.append(samples(10, start=appended))  # never raises
        appended += 10
    assert buf.dropped > 0
    assert buf.depth + buf.dropped == appended
    acked = 0
    while (batch := buf.next_batch(50)) is not None:  # the uploader drains it, still full
        acked += buf.ack(batch.key)
    assert acked + buf.dropped == appended
    assert saved(tiny_fs / "b.sqlite")[0] == buf.dropped
    buf.close()


def test_an_older_buffer_file_is_converted_to_incremental_vacuum(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    buf = SqliteBuffer(path, 1000)
    buf.append(samples(10))
    batch = buf.next_batch(4)
    assert batch is not None
    buf.close()
    db = sqlite3.connect(path)  # as files were made before: auto_vacuum NONE
    db.execute("PRAGMA journal_mode=DELETE")
    db.execute("PRAGMA auto_vacuum=NONE")
    db.execute("VACUUM")
    assert db.execute("PRAGMA auto_vacuum").fetchone()[0] == 0
    db.close()
    buf = SqliteBuffer(path, 1000)
    assert buf._db.execute("PRAGMA auto_vacuum").fetchone()[0] == 2
    assert buf._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    # everything kept: samples, the batch in flight with its key, the id sequence
    again = buf.next_batch(4)
    assert again is not None and again.key == batch.key and again.samples == batch.samples
    assert buf.depth == 10
    buf.append(samples(1, start=10))
    assert saved(path)[2] == [float(i) for i in range(11)]
    buf.close()
