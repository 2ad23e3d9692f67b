"""Sends buffered samples to the server in batches, per the ingest contract.

- 2xx: the batch is acknowledged and deleted from the buffer.
- 408, 429, 5xx, connection errors, timeouts: transient; the same batch (same Idempotency-Key) is
  retried with exponential backoff and full jitter, or after `Retry-After` when the server says.
- 401/403: the agent's key is wrong, which no batch can fix; kept and retried slowly, logged once.
- 413: the batch is too big for the server; it is split (the batch size halves) and resent.
- 422 naming one sample (`{"sample": i}`, the server's all-or-nothing rejection): that sample is
  quarantined and the rest of the batch is resent under a new key, so one misconfigured tag does
  not take good samples down with it.
- any other 4xx: permanent rejection of this batch; it is quarantined (kept, counted, logged once)
  and the uploader goes on with the next.
- the buffer failing under it (forming a batch, acknowledging one: an I/O error, a disk that
  stays full even after the buffer made room): logged once, retried with the same backoff; the
  uploader never dies of it (if it died, nothing would drain the buffer and free the disk).
"""

from __future__ import annotations

import asyncio
import email.utils
import gzip
import json
import logging
import random
import sqlite3
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import httpx

from edge_agent.buffer import Batch, Buffer
from edge_agent.config import AgentConfig

log = logging.getLogger(__name__)

INGEST_PATH = "/api/v1/ingest"


@dataclass
class UploadStats:
    batches_sent: int = 0
    samples_sent: int = 0
    batches_quarantined: int = 0
    samples_quarantined: int = 0
    attempts_failed: int = 0
    buffer_errors: int = 0
    last_error: str | None = None
    last_success: datetime | None = None
    statuses: dict[int, int] = field(default_factory=dict)


def build_client(config: AgentConfig) -> httpx.AsyncClient:
    server = config.server
    verify: ssl.SSLContext | bool = True
    if server.ca_file is not None:
        verify = ssl.create_default_context(cafile=str(server.ca_file))
    headers = {"User-Agent": f"shopfloor-spc-edge-agent/{agent_version()}"}
    if server.api_key is not None:
        headers["Authorization"] = f"Bearer {server.api_key.get_secret_value()}"
    return httpx.AsyncClient(base_url=str(server.url).rstrip("/"), headers=headers,
                             verify=verify, timeout=server.timeout_s)


def agent_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("shopfloor-spc")
    except PackageNotFoundError:
        return "0+unknown"


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Parse Retry-After (delta seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


class Backoff:
    """Exponential backoff with full jitter (AWS architecture blog's recommendation)."""

    def __init__(self, initial: float, maximum: float,
                 rng: Callable[[], float] = random.random) -> None:
        self.initial, self.maximum, self._rng = initial, maximum, rng
        self.failures = 0

    def next_delay(self) -> float:
        ceiling = min(self.maximum, self.initial * (2 ** self.failures))
        self.failures += 1
        return self.initial / 2 + self._rng() * (ceiling - self.initial / 2)

    def reset(self) -> None:
        self.failures = 0


class Uploader:
    def __init__(self, config: AgentConfig, buffer: Buffer,
                 client: httpx.AsyncClient | None = None) -> None:
        self.config = config
        self.buffer = buffer
        self.client = client or build_client(config)
        self.stats = UploadStats()
        self.wakeup = asyncio.Event()
        self._backoff = Backoff(config.upload.backoff_initial_s, config.upload.backoff_max_s)
        self._failing = False
        self._buffer_backoff = Backoff(config.upload.backoff_initial_s,
                                       config.upload.backoff_max_s)
        self._buffer_failing = False
        self.batch_size = config.upload.batch_size
        self._rejected: set[str] = set()

    def notify(self) -> None:
        """Called after samples are appended; wakes the uploader early when a batch is full."""
        if self.buffer.depth >= self.config.upload.batch_size:
            self.wakeup.set()

    async def run(self, stop: asyncio.Event) -> None:
        interval = self.config.upload.interval_s
        while not stop.is_set():
            try:
                retry_in = await self.drain(stop)
            except Exception as exc:  # the buffer failed (I/O error, a disk that stays full)
                retry_in = self._buffer_error(exc)
            else:
                if self._buffer_failing:
                    log.info("the uploader can use the buffer again after %d failed attempt(s)",
                             self.stats.buffer_errors)
                    self._buffer_failing = False
                    self._buffer_backoff.reset()
            self.wakeup.clear()
            if retry_in is None:
                await _wait_any(stop, self.wakeup, interval)
            else:  # backing off: a full buffer must not cut the pause short
                await _wait_any(stop, None, retry_in)

    async def drain(self, stop: asyncio.Event | None = None) -> float | None:
        """Send batches, in order, until the buffer is empty or a send fails.

        The next batch is formed and encoded (in a thread) while the current one is on the
        wire; it is sent only after the current one is acknowledged, so the server still
        receives batches in order. Returns the delay before the next attempt after a failure,
        else None.
        """
        prepared = await asyncio.to_thread(self._prepare, None)
        while prepared is not None and (stop is None or not stop.is_set()):
            batch, body = prepared
            ahead = asyncio.ensure_future(asyncio.to_thread(self._prepare, batch.key))
            try:
                delay = await self.send(batch, body)
            except BaseException:
                # e.g. the acknowledgement could not be written: the batch stays buffered and
                # is resent under its key (the server stores it once). Collect the one ahead.
                await asyncio.gather(ahead, return_exceptions=True)
                raise
            # A batch prepared ahead stays in the buffer under its key whatever happens here;
            # after a failure it is simply sent later, behind the one that failed.
            prepared = await ahead
            if delay is not None:
                return delay
            if prepared is None:  # formed while this batch was in flight; look again now
                prepared = await asyncio.to_thread(self._prepare, None)
        return None

    def _prepare(self, exclude: str | None) -> tuple[Batch, bytes] | None:
        batch = self.buffer.next_batch(self.batch_size, exclude=exclude, load=False)
        return None if batch is None else (batch, self._encode(batch))

    async def send(self, batch: Batch, body: bytes | None = None) -> float | None:
        """One attempt at one batch. Returns None when done with it, else a retry delay."""
        if body is None:
            body = await asyncio.to_thread(self._encode, batch)
        headers = {"Idempotency-Key": batch.key, "Content-Type": "application/json"}
        if self.config.upload.gzip:
            headers["Content-Encoding"] = "gzip"
        try:
            response = await self.client.post(INGEST_PATH, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return self._transient(f"{type(exc).__name__}: {exc}" if str(exc)
                                   else type(exc).__name__, None)
        status = response.status_code
        self.stats.statuses[status] = self.stats.statuses.get(status, 0) + 1
        if 200 <= status < 300:
            await asyncio.to_thread(self.buffer.ack, batch.key)
            self.stats.batches_sent += 1
            self.stats.samples_sent += batch.size
            self.stats.last_success = datetime.now(UTC)
            if self._failing:
                log.info("upload recovered: server accepted batch %s (%d samples, %d buffered)",
                         batch.key, batch.size, self.buffer.depth)
            self._failing = False
            self._backoff.reset()
            return None
        reason = f"HTTP {status}: {_snippet(response)}"
        if status in (408, 429) or status >= 500:
            return self._transient(reason, retry_after_seconds(response.headers.get("Retry-After")))
        if status in (401, 403):
            self._transient(f"{reason} (check server.api_key)", None)
            return self.config.upload.backoff_max_s
        if status == 413 and batch.size > 1:
            self.batch_size = max(1, batch.size // 2)
            await asyncio.to_thread(self.buffer.release, batch.key)
            log.warning("server says the batch is too large (%s); batch size now %d",
                        reason, self.batch_size)
            return None
        index = _rejected_sample(response)
        if status == 422 and index is not None and 0 <= index < batch.size:
            # The batch was sent without its samples as objects; only the rejected one is
            # needed, to name it (the batch is still in the buffer: it was not acknowledged).
            samples = batch.samples or await asyncio.to_thread(self.buffer.load, batch.key)
            await asyncio.to_thread(self.buffer.release, batch.key, [index], reason)
            self.stats.samples_quarantined += 1
            if index >= len(samples):  # the batch was dropped meanwhile (a full buffer)
                return None
            bad = samples[index]
            if bad.characteristic in self._rejected:
                return None
            self._rejected.add(bad.characteristic)  # once per characteristic, not per batch
            log.error("server rejected sample %s at %s (%s); it is quarantined, the other %d "
                      "samples of the batch are resent", bad.characteristic, bad.ts.isoformat(),
                      reason, batch.size - 1)
            return None
        n = await asyncio.to_thread(self.buffer.quarantine, batch.key, reason)
        self.stats.batches_quarantined += 1
        self.stats.samples_quarantined += n
        log.error("server rejected batch %s permanently (%s); %d samples moved to quarantine",
                  batch.key, reason, n)
        return None

    def _encode(self, batch: Batch) -> bytes:
        body = (f'{{"agent":{json.dumps(self.config.agent.name)},"samples":'
                f"{self.buffer.batch_json(batch)}}}").encode()
        return gzip.compress(body, compresslevel=5) if self.config.upload.gzip else body

    def _buffer_error(self, exc: Exception) -> float:
        """The buffer failed under the uploader: log once, retry with backoff. The samples are
        in the buffer or counted as dropped by it; nothing is lost here."""
        self.stats.buffer_errors += 1
        self.stats.last_error = f"buffer: {type(exc).__name__}: {exc}"
        if not self._buffer_failing:
            self._buffer_failing = True
            # A traceback only for the unexpected: a disk error says all there is to say.
            expected = isinstance(exc, (sqlite3.Error, OSError))
            log.error("the uploader cannot use the buffer (%s: %s); retrying with backoff",
                      type(exc).__name__, exc, exc_info=None if expected else exc)
        return self._buffer_backoff.next_delay()

    def _transient(self, reason: str, retry_after: float | None) -> float:
        self.stats.attempts_failed += 1
        self.stats.last_error = reason
        if not self._failing:
            log.warning("upload failing, samples stay buffered and are retried: %s", reason)
            self._failing = True
        delay = self._backoff.next_delay()
        if retry_after is not None:
            delay = min(retry_after, 3600.0)
        return delay

    async def aclose(self) -> None:
        await self.client.aclose()


def _rejected_sample(response: httpx.Response) -> int | None:
    try:
        index = response.json().get("sample")
    except (ValueError, AttributeError):
        return None
    return index if isinstance(index, int) else None


def _snippet(response: httpx.Response) -> str:
    text = response.text.strip().replace("\n", " ")
    return text[:300] or response.reason_phrase


async def _wait_any(stop: asyncio.Event, wakeup: asyncio.Event | None, timeout: float) -> None:
    tasks = [asyncio.ensure_future(stop.wait())]
    if wakeup is not None:
        tasks.append(asyncio.ensure_future(wakeup.wait()))
    try:
        await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
