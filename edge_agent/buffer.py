"""Store and forward: every sample is written here before anything else happens to it.

A sample leaves the buffer only when the server has acknowledged the batch it was sent in
(`ack`), or when the batch was permanently rejected (`quarantine`: moved to a table, kept and
counted). A batch, once formed, keeps its idempotency key and its samples across restarts, so a
batch interrupted by a crash is resent with the same key and the server stores it once.

When the configured bound is reached the oldest samples not yet in a batch are dropped (the batch
in flight is kept whole so that its key always names the same samples), and the number dropped is
kept in the buffer itself so it can be reported to the server, never silently lost.

A full disk is handled the same way (`SqliteBuffer`): when SQLite says SQLITE_FULL, the WAL is
checkpointed and truncated (it is usually the WAL that filled the disk: it grows to 1000 pages
before SQLite checkpoints it by itself); if that is not enough, the oldest samples are dropped and
counted, the freed pages are given back to the filesystem (incremental vacuum) and the write is
retried. A small reserve file beside the buffer is released first, so that there is always room
for the transaction that drops.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import logging
import os
import sqlite3
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from edge_agent.sources.base import Sample

log = logging.getLogger(__name__)

T = TypeVar("T")

_SQLITE_FULL = 13
_SQLITE_IOERR_SHMSIZE = 4874
RESERVE_BYTES = 64 * 1024  # released on a full disk: room for the transaction that drops
LOW_SPACE_BYTES = 16 * 1024 * 1024  # below this free, the WAL is checkpointed often
CONVERT_MAX_BYTES = 64 * 1024 * 1024  # an older buffer file up to this size gets auto_vacuum


@dataclass(frozen=True, slots=True)
class Batch:
    key: str  # the Idempotency-Key: stable for the life of the batch
    samples: list[Sample]  # empty when formed with `load=False` (see `size`)
    size: int = -1  # how many samples; -1: len(samples)

    def __post_init__(self) -> None:
        if self.size < 0:
            object.__setattr__(self, "size", len(self.samples))


class Buffer(ABC):
    """The one buffer interface; implementations are tested by one shared test class."""

    @abstractmethod
    def append(self, samples: Sequence[Sample]) -> None:
        """Store samples durably (for a persistent buffer, committed when this returns)."""

    @abstractmethod
    def next_batch(self, max_samples: int, exclude: str | None = None,
                   load: bool = True) -> Batch | None:
        """The oldest unacknowledged batch (other than `exclude`, the one in flight), or else a
        new one of up to `max_samples` of the oldest samples. With `load=False` the batch
        comes without its samples (only `size`): the uploader sends `batch_json`, and loading
        thousands of samples as objects for nothing was a sixth of the agent's CPU."""

    @abstractmethod
    def load(self, key: str) -> list[Sample]:
        """The samples of batch `key`, in order (empty if there is no such batch)."""

    def batch_json(self, batch: Batch) -> str:
        """The JSON array of the batch's samples, as the ingest contract wants them."""
        samples = batch.samples if batch.samples or not batch.size else self.load(batch.key)
        return json.dumps([sample_to_json(s) for s in samples], separators=(",", ":"))

    @abstractmethod
    def ack(self, key: str) -> int:
        """Delete exactly the samples of batch `key`; returns how many. If the batch had been
        dropped (the bound, a full disk) while it was on its way, the server stored it after
        all: it is taken off the dropped count again."""

    @abstractmethod
    def note_dropped(self, n: int) -> None:
        """Count `n` samples that never reached the buffer (e.g. shed by the writer while the
        disk could not be written) as dropped; persisted with the next write."""

    @abstractmethod
    def quarantine(self, key: str, reason: str) -> int:
        """Move batch `key` out of the send queue into quarantine; returns how many samples."""

    @abstractmethod
    def release(self, key: str, quarantine: Sequence[int] = (), reason: str = "") -> int:
        """Dissolve batch `key`: the samples at positions `quarantine` go to quarantine, the
        others back to the queue (in their order) to be sent in a new batch. Returns how many
        samples went back to the queue."""

    @property
    @abstractmethod
    def depth(self) -> int:
        """Samples waiting to be acknowledged (in batches or not)."""

    @property
    @abstractmethod
    def dropped(self) -> int:
        """Samples dropped because the buffer was full, since the buffer was created."""

    @property
    @abstractmethod
    def quarantined(self) -> int:
        """Samples in quarantine."""

    @abstractmethod
    def close(self) -> None: ...


def _locked(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def wrapper(self: MemoryBuffer, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)
    return wrapper


class MemoryBuffer(Buffer):
    """Same semantics, no durability: for `check-config` dry runs and as a reference model."""

    def __init__(self, max_samples: int) -> None:
        self.max_samples = max_samples
        # The agent's writer and uploader call in from worker threads.
        self._lock = threading.RLock()
        self._free: deque[Sample] = deque()
        self._batches: dict[str, list[Sample]] = {}
        self._dropped = 0
        self._dropped_batches: OrderedDict[str, int] = OrderedDict()
        self._quarantine: dict[str, tuple[str, list[Sample]]] = {}

    @_locked
    def append(self, samples: Sequence[Sample]) -> None:
        self._free.extend(samples)
        excess = self.depth - self.max_samples
        while excess > 0 and self._free:
            self._free.popleft()
            self._dropped += 1
            excess -= 1
        while excess > 0 and self._batches:
            oldest = next(iter(self._batches))
            lost = self._batches.pop(oldest)
            self._dropped += len(lost)
            _remember(self._dropped_batches, oldest, len(lost))
            excess -= len(lost)

    @_locked
    def next_batch(self, max_samples: int, exclude: str | None = None,
                   load: bool = True) -> Batch | None:
        for key, samples in self._batches.items():
            if key != exclude:
                return Batch(key, list(samples) if load else [], len(samples))
        if not self._free:
            return None
        take = [self._free.popleft() for _ in range(min(max_samples, len(self._free)))]
        key = str(uuid.uuid4())
        self._batches[key] = take
        return Batch(key, list(take) if load else [], len(take))

    @_locked
    def load(self, key: str) -> list[Sample]:
        return list(self._batches.get(key, []))

    @_locked
    def batch_json(self, batch: Batch) -> str:
        return json.dumps([sample_to_json(s) for s in self._batches.get(batch.key, [])],
                          separators=(",", ":"))

    @_locked
    def ack(self, key: str) -> int:
        n = len(self._batches.pop(key, []))
        back = self._dropped_batches.pop(key, 0)
        if n == 0:
            self._dropped -= back
        return n

    @_locked
    def note_dropped(self, n: int) -> None:
        self._dropped += n

    @_locked
    def quarantine(self, key: str, reason: str) -> int:
        samples = self._batches.pop(key, [])
        if samples:
            self._quarantine[key] = (reason, samples)
        return len(samples)

    @_locked
    def release(self, key: str, quarantine: Sequence[int] = (), reason: str = "") -> int:
        samples = self._batches.pop(key, [])
        bad = set(quarantine)
        rejected = [s for i, s in enumerate(samples) if i in bad]
        if rejected:
            self._quarantine[f"{key}#rejected"] = (reason, rejected)
        keep = [s for i, s in enumerate(samples) if i not in bad]
        self._free.extendleft(reversed(keep))
        return len(keep)

    @property
    def depth(self) -> int:
        return len(self._free) + sum(len(b) for b in self._batches.values())

    @property
    def dropped(self) -> int:
        return self._dropped

    @property
    def quarantined(self) -> int:
        return sum(len(s) for _, s in self._quarantine.values())

    def close(self) -> None:
        pass


_SCHEMA = """
CREATE TABLE IF NOT EXISTS samples (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- AUTOINCREMENT: ids never reused, so order holds
    characteristic TEXT NOT NULL,
    ts_us INTEGER NOT NULL,               -- microseconds since the Unix epoch, UTC
    value REAL,
    quality TEXT NOT NULL,
    part_id TEXT,
    batch TEXT                            -- NULL until the sample is put in a batch
);
CREATE INDEX IF NOT EXISTS samples_batch ON samples(batch);
CREATE TABLE IF NOT EXISTS batches (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS quarantine (
    key TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    samples INTEGER NOT NULL,
    payload TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO counters VALUES ('dropped', 0);
"""


# SQLite renders a REAL in JSON with 15 significant digits; 17 round-trip every double exactly,
# so the server stores the very value the device reported.
_EXACT_VALUE = "CASE WHEN value IS NULL THEN NULL ELSE json(printf('%!.17g', value)) END"


class SqliteBuffer(Buffer):
    """SQLite in WAL mode. `synchronous=full` makes each committed append survive power loss."""

    def __init__(self, path: Path | str, max_samples: int, synchronous: str = "full",
                 reserve_bytes: int = RESERVE_BYTES) -> None:
        self.path = Path(path)
        self.max_samples = max_samples
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()  # the agent uses one thread; the lock keeps tools safe
        # New files only (a no-op once tables exist): pages freed by dropping samples can be
        # given back to the filesystem, so that space freed on a full disk is real.
        self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'full' else 'NORMAL'}")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)
        self._convert_to_auto_vacuum()
        self._depth = self._db.execute("SELECT count(*) FROM samples").fetchone()[0]
        self._dropped = self._counter("dropped")
        self._unsaved_drops = 0  # counted (in _dropped) but not yet written to the file
        self._dropped_batches: OrderedDict[str, int] = OrderedDict()
        self._reserve = Path(f"{self.path}-reserve")
        self._reserve_bytes = reserve_bytes
        self._full_episode_drops: int | None = None  # None: the disk is not full
        self._low_space = False
        self._next_space_check = 0.0
        self._watch_space()
        self._make_reserve()

    def _convert_to_auto_vacuum(self) -> None:
        """A buffer file made before auto_vacuum was set keeps freed pages to itself; a small
        one is rewritten once (VACUUM) so that it can give them back on a full disk."""
        if self._db.execute("PRAGMA auto_vacuum").fetchone()[0] != 0:
            return
        try:
            size = self.path.stat().st_size
            st = os.statvfs(self.path.parent)
        except OSError:
            return
        if size > CONVERT_MAX_BYTES or st.f_bavail * st.f_frsize < 3 * size + LOW_SPACE_BYTES:
            return
        try:
            self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")
            self._db.execute("VACUUM")
        except sqlite3.Error as exc:
            log.warning("buffer %s: could not enable incremental vacuum (%s); freed space stays "
                        "in the file", self.path, exc)
            return
        log.info("buffer %s: rewritten once with incremental vacuum enabled", self.path)

    def _counter(self, name: str) -> int:
        return self._db.execute("SELECT value FROM counters WHERE name=?", (name,)).fetchone()[0]

    # -- transactions and a full disk ---------------------------------------------------------

    def _rollback(self) -> None:
        # After SQLITE_FULL (and some I/O errors) SQLite has already rolled back by itself; an
        # unconditional ROLLBACK would then fail and replace the error that matters.
        if self._db.in_transaction:
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error as exc:
                log.debug("rollback failed: %r", exc)

    def _txn(self, body: Callable[[], T]) -> T:
        """One write transaction; drops counted but not yet saved are saved with it."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            result = body()
            if self._unsaved_drops:
                self._db.execute("UPDATE counters SET value = value + ? WHERE name='dropped'",
                                 (self._unsaved_drops,))
            self._db.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise
        self._unsaved_drops = 0
        return result

    def _write(self, body: Callable[[], T], room_for: int = 0, may_drop: bool = True) -> T:
        """`body` in a write transaction; on a full disk, make room and try again. Raises the
        original error when no room can be made (nothing left to drop, or `may_drop` false
        and checkpointing the WAL was not enough)."""
        attempt = 0
        while True:
            try:
                result = self._txn(body)
            except sqlite3.Error as exc:
                if (not is_disk_full(exc) or (attempt and not may_drop)
                        or not self._make_room(attempt, room_for, exc, may_drop)):
                    raise
                attempt += 1
                continue
            return result

    def _make_room(self, attempt: int, room_for: int, exc: sqlite3.Error,
                   may_drop: bool = True) -> bool:
        if self._full_episode_drops is None:
            self._full_episode_drops = 0
            log.warning("buffer %s: disk full (%s); checkpointing the WAL and, if that is not "
                        "enough, dropping the oldest samples (counted as dropped)", self.path, exc)
            self._set_low_space(True)
        # Without leave to drop, the reserve is kept: the caller will try something smaller.
        if not may_drop:
            return attempt == 0 and self._checkpoint()
        # First the WAL (usually what filled the disk) into the database, truncated, with the
        # reserve's room if need be; if then there is no room for the reserve, the data itself
        # does not fit.
        released = checkpointed = False
        if attempt == 0:
            checkpointed = self._checkpoint()
            if not checkpointed:
                released = self._release_reserve()
                checkpointed = released and self._checkpoint()
            if checkpointed and self._make_reserve():
                return True
        released = self._release_reserve() or released
        if not checkpointed:
            checkpointed = self._checkpoint()
        progress = released or (attempt == 0 and checkpointed)
        for _ in range(32):  # each round drops at least 64 samples and a 16th of the buffer
            want = max(room_for, 64, self._depth // 16)
            try:
                dropped = self._txn(functools.partial(self._drop_oldest, want))
            except sqlite3.Error as drop_exc:
                if not is_disk_full(drop_exc):
                    raise
                log.debug("no room even to drop samples: %r", drop_exc)
                return progress
            if dropped == 0:
                break
            progress = True
            self._depth -= dropped
            self._dropped += dropped
            if self._full_episode_drops == 0:
                log.warning("buffer %s: disk full, dropped the %d oldest sample(s) to make room "
                            "(%d dropped in all); more are dropped as needed, logged at the end",
                            self.path, dropped, self._dropped)
            self._full_episode_drops += dropped
            self._shrink()
            # Until the reserve is back, the next full disk could leave no room even to drop.
            if self._make_reserve():
                break
        return progress

    def _watch_space(self) -> None:
        """At most once a second: is the filesystem low on space?"""
        now = time.monotonic()
        if now < self._next_space_check:
            return
        self._next_space_check = now + 1.0
        try:
            st = os.statvfs(self.path.parent)
        except OSError:
            return
        self._set_low_space(st.f_bavail * st.f_frsize < LOW_SPACE_BYTES)

    def _set_low_space(self, low: bool) -> None:
        """Low on space, the WAL is kept small: a checkpoint must be able to grow the database
        by the new pages the WAL holds (by default up to 1000 pages, 4 MiB), and on a full disk
        only the reserve file guarantees that room. Otherwise SQLite's default, for speed."""
        if low == self._low_space:
            return
        self._low_space = low
        page = int(self._db.execute("PRAGMA page_size").fetchone()[0])
        pages = max(4, self._reserve_bytes // page // 2) if low else 1000
        self._db.execute(f"PRAGMA wal_autocheckpoint={pages}")
        log.log(logging.WARNING if low else logging.INFO,
                "buffer %s: %s; WAL checkpointed every %d pages", self.path,
                f"low on space (disk full, or less than {LOW_SPACE_BYTES >> 20} MiB free)" if low
                else f"again more than {LOW_SPACE_BYTES >> 20} MiB free", pages)

    def _checkpoint(self) -> bool:
        """Copy the WAL into the database and truncate it to zero bytes. True if done."""
        try:
            busy, _, _ = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
        except sqlite3.Error as exc:
            if not is_disk_full(exc):
                raise
            return False
        return busy == 0

    def _shrink(self) -> None:
        """Give free pages back to the filesystem (files created with auto_vacuum only)."""
        try:
            # executescript steps the pragma to the end; execute() would free one page.
            self._db.executescript("PRAGMA incremental_vacuum;")
        except sqlite3.Error as exc:
            if not is_disk_full(exc):
                raise
        self._checkpoint()

    def _make_reserve(self) -> bool:
        """A file of zeros beside the buffer: released on a full disk so that the transaction
        that drops the oldest samples has room. Made only when there is ample free space; True
        if there is one."""
        if self._reserve_bytes <= 0 or self._reserve.exists():
            return True
        try:
            st = os.statvfs(self._reserve.parent)
            if st.f_bavail * st.f_frsize < 2 * self._reserve_bytes:
                return False
            with open(self._reserve, "wb") as f:
                f.write(bytes(self._reserve_bytes))
                f.flush()
                os.fsync(f.fileno())
        except OSError as exc:
            log.debug("no reserve file: %r", exc)
            with contextlib.suppress(OSError):
                self._reserve.unlink()
            return False
        return True

    def _release_reserve(self) -> bool:
        try:
            self._reserve.unlink()
        except FileNotFoundError:
            return False
        return True

    def _end_full_episode(self) -> None:
        if self._full_episode_drops is not None and self._depth == 0:
            log.info("buffer %s: emptied after a full disk; %d sample(s) were dropped to make "
                     "room (%d dropped in all)", self.path, self._full_episode_drops,
                     self._dropped)
            self._full_episode_drops = None
            self._shrink()
            self._make_reserve()

    # -- the buffer interface -------------------------------------------------------------------

    def append(self, samples: Sequence[Sample]) -> None:
        if not samples:
            return
        # One statement for all rows: sqlite3 releases the GIL around every row step, and with
        # busy source threads each re-acquisition can wait a whole switch interval (5 ms).
        # A Sample is the row itself, (characteristic, ts_us, value, quality, part_id).
        rows = json.dumps(samples if isinstance(samples, list) else list(samples),
                          allow_nan=False)
        n = len(samples)

        def body() -> int:
            self._db.execute(
                "INSERT INTO samples (characteristic, ts_us, value, quality, part_id) "
                "SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4 "
                "FROM json_each(?) ORDER BY key", (rows,))
            return self._enforce_bound(self._depth + n)

        with self._lock:
            dropped = self._write(body, room_for=n)
            self._depth += n - dropped
            self._dropped += dropped

    def note_dropped(self, n: int) -> None:
        if n <= 0:
            return
        with self._lock:
            self._dropped += n
            self._unsaved_drops += n

    def _enforce_bound(self, depth: int) -> int:
        excess = depth - self.max_samples
        return self._drop_oldest(excess) if excess > 0 else 0

    def _drop_oldest(self, n: int) -> int:
        """In a transaction: drop the `n` oldest samples not in a batch, or if there are not as
        many, whole oldest batches too; counted as dropped. Returns how many were dropped."""
        dropped = self._db.execute(
            # NOT INDEXED: walk the table in id order and stop after `n` rows; through the
            # batch index SQLite would sort every unbatched sample first (slow with a backlog).
            "DELETE FROM samples WHERE id IN (SELECT id FROM samples NOT INDEXED "
            "WHERE batch IS NULL ORDER BY id LIMIT ?)", (n,)).rowcount
        while dropped < n:  # everything left is in batches: drop whole oldest batches
            row = self._db.execute("SELECT key FROM batches ORDER BY seq LIMIT 1").fetchone()
            if row is None:
                break
            lost = self._db.execute("DELETE FROM samples WHERE batch=?", row).rowcount
            self._db.execute("DELETE FROM batches WHERE key=?", row)
            # It may be on its way to the server: if acknowledged, it is counted back (ack).
            _remember(self._dropped_batches, row[0], lost)
            dropped += lost
        if dropped:
            self._db.execute("UPDATE counters SET value = value + ? WHERE name='dropped'",
                             (dropped,))
        return dropped

    def next_batch(self, max_samples: int, exclude: str | None = None,
                   load: bool = True) -> Batch | None:
        with self._lock:
            while True:
                row = self._db.execute("SELECT key FROM batches WHERE key IS NOT ? "
                                       "ORDER BY seq LIMIT 1", (exclude,)).fetchone()
                if row is None:
                    break
                if load:
                    samples = self._load(row[0])
                    if samples:
                        return Batch(row[0], samples)
                else:
                    (n,) = self._db.execute("SELECT count(*) FROM samples WHERE batch=?",
                                            row).fetchone()
                    if n:
                        return Batch(row[0], [], n)
                # emptied by the bound
                self._write(lambda r=row: self._db.execute("DELETE FROM batches WHERE key=?", r))
            if self._depth == 0 or self._db.execute(
                    "SELECT 1 FROM samples WHERE batch IS NULL LIMIT 1").fetchone() is None:
                return None
            key = str(uuid.uuid4())

            def body(size: int) -> int:
                self._db.execute("INSERT INTO batches (key, created) VALUES (?, ?)",
                                 (key, datetime.now(UTC).isoformat()))
                return self._db.execute(
                    "UPDATE samples SET batch=? WHERE id IN (SELECT id FROM samples NOT INDEXED "
                    "WHERE batch IS NULL ORDER BY id LIMIT ?)", (key, size)).rowcount

            size = max_samples
            while True:
                # On a full disk a smaller batch (a smaller transaction) is tried before any
                # sample is dropped to make room.
                try:
                    n = self._write(functools.partial(body, size), may_drop=size <= 16)
                    break
                except sqlite3.Error as exc:
                    if not is_disk_full(exc) or size <= 16:
                        raise
                    size //= 2
            # Making room (a full disk) may have dropped every unbatched sample.
            if not load:
                return Batch(key, [], n) if n else None
            samples = self._load(key)
            return Batch(key, samples) if samples else None

    def load(self, key: str) -> list[Sample]:
        with self._lock:
            return self._load(key)

    def _load(self, key: str) -> list[Sample]:
        (text,) = self._db.execute(
            f"SELECT json_group_array(json_array(characteristic, ts_us, {_EXACT_VALUE}, "
            "quality, part_id)) FROM (SELECT * FROM samples WHERE batch=? ORDER BY id)", (key,)
        ).fetchone()
        row = Sample.row
        return [row(c, t, v, q, p) for c, t, v, q, p in json.loads(text)]

    def batch_json(self, batch: Batch) -> str:
        # Built by SQLite in one step (see append); the timestamp with integer arithmetic so it
        # is exactly the stored microseconds truncated to milliseconds.
        with self._lock:
            (text,) = self._db.execute(
                "SELECT json_group_array(json_object('characteristic', characteristic, 'ts', "
                "strftime('%Y-%m-%dT%H:%M:%S', ts_us / 1000000, 'unixepoch') || "
                f"printf('.%03dZ', (ts_us / 1000) % 1000), 'value', {_EXACT_VALUE}, "
                "'quality', quality, "
                "'part_id', part_id)) FROM (SELECT * FROM samples WHERE batch=? ORDER BY id)",
                (batch.key,)).fetchone()
        return text

    def ack(self, key: str) -> int:
        def body() -> tuple[int, int]:
            n = self._db.execute("DELETE FROM samples WHERE batch=?", (key,)).rowcount
            self._db.execute("DELETE FROM batches WHERE key=?", (key,))
            back = 0 if n else self._dropped_batches.get(key, 0)
            if back:  # dropped on its way, yet the server has it: not lost after all
                self._db.execute("UPDATE counters SET value = value - ? WHERE name='dropped'",
                                 (back,))
            return n, back

        with self._lock:
            n, back = self._write(body)
            self._dropped_batches.pop(key, None)
            self._depth -= n
            self._dropped -= back
            self._end_full_episode()
            return n

    def quarantine(self, key: str, reason: str) -> int:
        with self._lock:
            samples = self._load(key)
            payload = json.dumps([sample_to_json(s) for s in samples])

            def body() -> int:
                self._db.execute("INSERT OR REPLACE INTO quarantine VALUES (?, ?, ?, ?, ?)",
                                 (key, reason, len(samples), payload,
                                  datetime.now(UTC).isoformat()))
                n = self._db.execute("DELETE FROM samples WHERE batch=?", (key,)).rowcount
                self._db.execute("DELETE FROM batches WHERE key=?", (key,))
                return n

            n = self._write(body)
            self._depth -= n
            return n

    def release(self, key: str, quarantine: Sequence[int] = (), reason: str = "") -> int:
        with self._lock:
            ids = [r[0] for r in self._db.execute(
                "SELECT id FROM samples WHERE batch=? ORDER BY id", (key,)).fetchall()]
            bad = [ids[i] for i in sorted(set(quarantine)) if 0 <= i < len(ids)]

            def body() -> tuple[int, int]:
                removed = 0
                if bad:
                    marks = ",".join("?" * len(bad))
                    rows = self._db.execute(
                        "SELECT characteristic, ts_us, value, quality, part_id FROM samples "
                        f"WHERE id IN ({marks}) ORDER BY id", bad).fetchall()
                    payload = json.dumps([sample_to_json(Sample.row(c, t, v, q, p))
                                          for c, t, v, q, p in rows])
                    self._db.execute("INSERT OR REPLACE INTO quarantine VALUES (?, ?, ?, ?, ?)",
                                     (f"{key}#rejected", reason, len(rows), payload,
                                      datetime.now(UTC).isoformat()))
                    removed = self._db.execute(f"DELETE FROM samples WHERE id IN ({marks})",
                                               bad).rowcount
                # Their ids are older than any unbatched sample, so they go out first again.
                kept = self._db.execute("UPDATE samples SET batch=NULL WHERE batch=?",
                                        (key,)).rowcount
                self._db.execute("DELETE FROM batches WHERE key=?", (key,))
                return kept, removed

            kept, removed = self._write(body)
            self._depth -= removed
            return kept

    @property
    def depth(self) -> int:
        return self._depth

    @property
    def dropped(self) -> int:
        return self._dropped

    @property
    def quarantined(self) -> int:
        with self._lock:
            return self._db.execute("SELECT coalesce(sum(samples), 0) FROM quarantine"
                                    ).fetchone()[0]

    def close(self) -> None:
        with self._lock:
            if self._unsaved_drops:
                try:
                    self._txn(lambda: None)
                except sqlite3.Error as exc:
                    log.error("buffer %s: %d dropped sample(s) could not be saved in the "
                              "dropped count (%r)", self.path, self._unsaved_drops, exc)
            self._db.close()


def is_disk_full(exc: BaseException) -> bool:
    """SQLITE_FULL (a full filesystem, or max_page_count reached), or ENOSPC."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF == _SQLITE_FULL or code == _SQLITE_IOERR_SHMSIZE
    return isinstance(exc, OSError) and exc.errno == errno.ENOSPC


def _remember(batches: OrderedDict[str, int], key: str, n: int, keep: int = 64) -> None:
    batches[key] = n
    while len(batches) > keep:
        batches.popitem(last=False)


def format_ts(ts: datetime) -> str:
    """RFC 3339 UTC with milliseconds and a Z, as in the ingest contract."""
    # isoformat is implemented in C; strftime per sample was a third of a batch's encoding time.
    return ts.astimezone(UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def sample_to_json(s: Sample) -> dict[str, object]:
    return {"characteristic": s.characteristic, "ts": format_ts(s.ts), "value": s.value,
            "quality": s.quality, "part_id": s.part_id}


def open_buffer(path: Path | str, max_samples: int, synchronous: str = "full") -> Buffer:
    if str(path) == ":memory:":
        return MemoryBuffer(max_samples)
    return SqliteBuffer(path, max_samples, synchronous)
