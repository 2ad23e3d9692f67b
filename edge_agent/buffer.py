"""Store and forward: every sample is written here before anything else happens to it.

A sample leaves the buffer only when the server has acknowledged the batch it was sent in
(`ack`), or when the batch was permanently rejected (`quarantine`: moved to a table, kept and
counted). A batch, once formed, keeps its idempotency key and its samples across restarts, so a
batch interrupted by a crash is resent with the same key and the server stores it once.

When the configured bound is reached the oldest samples not yet in a batch are dropped (the batch
in flight is kept whole so that its key always names the same samples), and the number dropped is
kept in the buffer itself so it can be reported to the server, never silently lost.
"""

from __future__ import annotations

import functools
import json
import sqlite3
import threading
import uuid
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from edge_agent.sources.base import Sample

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class Batch:
    key: str  # the Idempotency-Key: stable for the life of the batch
    samples: list[Sample]


class Buffer(ABC):
    """The one buffer interface; implementations are tested by one shared test class."""

    @abstractmethod
    def append(self, samples: Sequence[Sample]) -> None:
        """Store samples durably (for a persistent buffer, committed when this returns)."""

    @abstractmethod
    def next_batch(self, max_samples: int, exclude: str | None = None) -> Batch | None:
        """The oldest unacknowledged batch (other than `exclude`, the one in flight), or else a
        new one of up to `max_samples` of the oldest samples."""

    def batch_json(self, batch: Batch) -> str:
        """The JSON array of the batch's samples, as the ingest contract wants them."""
        return json.dumps([sample_to_json(s) for s in batch.samples], separators=(",", ":"))

    @abstractmethod
    def ack(self, key: str) -> int:
        """Delete exactly the samples of batch `key`; returns how many."""

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
            excess -= len(lost)

    @_locked
    def next_batch(self, max_samples: int, exclude: str | None = None) -> Batch | None:
        for key, samples in self._batches.items():
            if key != exclude:
                return Batch(key, list(samples))
        if not self._free:
            return None
        take = [self._free.popleft() for _ in range(min(max_samples, len(self._free)))]
        key = str(uuid.uuid4())
        self._batches[key] = take
        return Batch(key, list(take))

    @_locked
    def ack(self, key: str) -> int:
        return len(self._batches.pop(key, []))

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


def _to_us(ts: datetime) -> int:
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    return (ts - _EPOCH) // _US


def _from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


class SqliteBuffer(Buffer):
    """SQLite in WAL mode. `synchronous=full` makes each committed append survive power loss."""

    def __init__(self, path: Path | str, max_samples: int, synchronous: str = "full") -> None:
        self.path = Path(path)
        self.max_samples = max_samples
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._lock = threading.Lock()  # the agent uses one thread; the lock keeps tools safe
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={'FULL' if synchronous == 'full' else 'NORMAL'}")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)
        self._depth = self._db.execute("SELECT count(*) FROM samples").fetchone()[0]
        self._dropped = self._counter("dropped")

    def _counter(self, name: str) -> int:
        return self._db.execute("SELECT value FROM counters WHERE name=?", (name,)).fetchone()[0]

    def append(self, samples: Sequence[Sample]) -> None:
        if not samples:
            return
        # One statement for all rows: sqlite3 releases the GIL around every row step, and with
        # busy source threads each re-acquisition can wait a whole switch interval (5 ms).
        rows = json.dumps([[s.characteristic, _to_us(s.ts), s.value, s.quality, s.part_id]
                           for s in samples], allow_nan=False)
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT INTO samples (characteristic, ts_us, value, quality, part_id) "
                    "SELECT value ->> 0, value ->> 1, value ->> 2, value ->> 3, value ->> 4 "
                    "FROM json_each(?) ORDER BY key", (rows,))
                depth = self._depth + len(samples)
                dropped = self._enforce_bound(depth)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._depth = depth - dropped
            self._dropped += dropped

    def _enforce_bound(self, depth: int) -> int:
        excess = depth - self.max_samples
        if excess <= 0:
            return 0
        dropped = self._db.execute(
            # NOT INDEXED: walk the table in id order and stop after `excess` rows; through the
            # batch index SQLite would sort every unbatched sample first (slow with a backlog).
            "DELETE FROM samples WHERE id IN (SELECT id FROM samples NOT INDEXED "
            "WHERE batch IS NULL ORDER BY id LIMIT ?)", (excess,)).rowcount
        while dropped < excess:  # everything left is in batches: drop whole oldest batches
            row = self._db.execute("SELECT key FROM batches ORDER BY seq LIMIT 1").fetchone()
            if row is None:
                break
            dropped += self._db.execute("DELETE FROM samples WHERE batch=?", row).rowcount
            self._db.execute("DELETE FROM batches WHERE key=?", row)
        self._db.execute("UPDATE counters SET value = value + ? WHERE name='dropped'",
                         (dropped,))
        return dropped

    def next_batch(self, max_samples: int, exclude: str | None = None) -> Batch | None:
        with self._lock:
            while True:
                row = self._db.execute("SELECT key FROM batches WHERE key IS NOT ? "
                                       "ORDER BY seq LIMIT 1", (exclude,)).fetchone()
                if row is None:
                    break
                samples = self._load(row[0])
                if samples:
                    return Batch(row[0], samples)
                self._db.execute("DELETE FROM batches WHERE key=?", row)  # emptied by the bound
            if self._depth == 0:
                return None
            key = str(uuid.uuid4())
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("INSERT INTO batches (key, created) VALUES (?, ?)",
                                 (key, datetime.now(UTC).isoformat()))
                n = self._db.execute(
                    "UPDATE samples SET batch=? WHERE id IN (SELECT id FROM samples NOT INDEXED "
                    "WHERE batch IS NULL ORDER BY id LIMIT ?)", (key, max_samples)).rowcount
                if n == 0:
                    self._db.execute("ROLLBACK")
                    return None
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
            return Batch(key, self._load(key))

    def _load(self, key: str) -> list[Sample]:
        (text,) = self._db.execute(
            f"SELECT json_group_array(json_array(characteristic, ts_us, {_EXACT_VALUE}, "
            "quality, part_id)) FROM (SELECT * FROM samples WHERE batch=? ORDER BY id)", (key,)
        ).fetchone()
        return [Sample(c, _from_us(t), v, q, p) for c, t, v, q, p in json.loads(text)]

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
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            n = self._db.execute("DELETE FROM samples WHERE batch=?", (key,)).rowcount
            self._db.execute("DELETE FROM batches WHERE key=?", (key,))
            self._db.execute("COMMIT")
            self._depth -= n
            return n

    def quarantine(self, key: str, reason: str) -> int:
        with self._lock:
            samples = self._load(key)
            payload = json.dumps([sample_to_json(s) for s in samples])
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("INSERT OR REPLACE INTO quarantine VALUES (?, ?, ?, ?, ?)",
                             (key, reason, len(samples), payload, datetime.now(UTC).isoformat()))
            n = self._db.execute("DELETE FROM samples WHERE batch=?", (key,)).rowcount
            self._db.execute("DELETE FROM batches WHERE key=?", (key,))
            self._db.execute("COMMIT")
            self._depth -= n
            return n

    def release(self, key: str, quarantine: Sequence[int] = (), reason: str = "") -> int:
        with self._lock:
            ids = [r[0] for r in self._db.execute(
                "SELECT id FROM samples WHERE batch=? ORDER BY id", (key,)).fetchall()]
            bad = [ids[i] for i in sorted(set(quarantine)) if 0 <= i < len(ids)]
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if bad:
                    marks = ",".join("?" * len(bad))
                    rows = self._db.execute(
                        "SELECT characteristic, ts_us, value, quality, part_id FROM samples "
                        f"WHERE id IN ({marks}) ORDER BY id", bad).fetchall()
                    payload = json.dumps([sample_to_json(Sample(c, _from_us(t), v, q, p))
                                          for c, t, v, q, p in rows])
                    self._db.execute("INSERT OR REPLACE INTO quarantine VALUES (?, ?, ?, ?, ?)",
                                     (f"{key}#rejected", reason, len(rows), payload,
                                      datetime.now(UTC).isoformat()))
                    self._db.execute(f"DELETE FROM samples WHERE id IN ({marks})", bad)
                # Their ids are older than any unbatched sample, so they go out first again.
                kept = self._db.execute("UPDATE samples SET batch=NULL WHERE batch=?",
                                        (key,)).rowcount
                self._db.execute("DELETE FROM batches WHERE key=?", (key,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._depth -= len(bad)
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
            self._db.close()


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
