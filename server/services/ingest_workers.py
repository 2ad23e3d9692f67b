"""Ingest worker processes: POST /ingest's parsing, storage and SPC evaluation on more cores.

A Python process uses one core at most, and ingest is mostly Python work (JSON validation, rows,
scoring), so with `SPC_INGEST_WORKERS=N` the server hands each batch's body to one of N worker
processes (`server.ingest_worker`), each with its own connection pool and many batches in
flight. The server process keeps everything else: HTTP, API keys, the WebSocket hub, the webhook
worker and the metrics, so live events and webhooks work as with no workers. A batch goes to the
worker with the fewest batches in flight, so a busy or slow worker gets less.

Each worker is connected by a socketpair private to the two processes; frames are a 4-byte
big-endian length and a pickle:

    server -> worker   the settings (JSON, first frame), then per batch
                       (job, body, idempotency key, agent scope, watched characteristic keys)
    worker -> server   ("ready", pid) once its pool is open, or ("failed", message); then per
                       batch (job, "ok", (accepted, duplicates, replayed), events, newest ts)
                       or (job, "refused", SPCError) / (job, "down", message) /
                       (job, "failed", message)

A worker that ends (a crash, a kill) fails its batches in flight with 503 Unavailable and is
started again. Each of those batches was committed whole or not at all, so the agent's retry with
the same Idempotency-Key either stores it or is answered from what was stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import pickle
import socket
import struct
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

from server.core.config import Settings
from server.exceptions import SPCError, Unavailable
from server.models import IngestResult
from server.services.ingest import Outcome

log = logging.getLogger("spc.ingest_workers")

HEADER = struct.Struct(">I")
START_TIMEOUT_S = 60.0  # importing the server and opening a pool, on a slow Raspberry Pi
STOP_TIMEOUT_S = 10.0
RESTART_DELAYS_S = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0)  # after repeated failures to start again


async def read_frame(reader: asyncio.StreamReader) -> Any:
    (size,) = HEADER.unpack(await reader.readexactly(HEADER.size))
    return pickle.loads(await reader.readexactly(size))


def encode_frame(message: object) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(data)) + data


def write_frame(writer: asyncio.StreamWriter, message: object) -> None:
    writer.write(encode_frame(message))


class WorkerStartError(RuntimeError):
    """An ingest worker process did not come up (its message says why)."""


@dataclass(eq=False)
class _Worker:
    index: int
    process: subprocess.Popen[bytes]
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    in_flight: dict[int, asyncio.Future[tuple[str, tuple[Any, ...]]]] = field(
        default_factory=dict)
    batches: int = 0
    alive: bool = True
    reading: asyncio.Task[None] | None = None


class IngestWorkers:
    """N ingest worker processes and the dispatch of batches to them."""

    def __init__(self, settings: Settings, count: int) -> None:
        if count < 1:
            raise ValueError(f"count must be at least 1, got {count}")
        self.settings = settings
        self.count = count
        self.restarts = 0
        self._slots: list[_Worker | None] = [None] * count
        self._jobs = itertools.count()
        self._stopping = False
        self._restarting: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Start every worker; raise WorkerStartError (after stopping the others) if one does
        not come up, so a server with a wrong setting fails at start, not on the first batch."""
        results = await asyncio.gather(*(self._spawn(i) for i in range(self.count)),
                                       return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            await self.stop()
            raise failed[0]

    async def _spawn(self, index: int) -> _Worker:
        """Start worker `index` and put it in its slot as soon as it is ready (a worker that
        dies while others still start is started again at once). Whatever goes wrong, and when
        cancelled (a stop), nothing half-started is left behind."""
        parent, child = socket.socketpair()
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "server.ingest_worker", "--fd", str(child.fileno())],
                pass_fds=(child.fileno(),),
            )
        except BaseException:
            parent.close()
            raise
        finally:
            child.close()
        writer: asyncio.StreamWriter | None = None
        try:
            reader, writer = await asyncio.open_unix_connection(sock=parent)
            write_frame(writer, self.settings.model_dump_json())
            hello = await asyncio.wait_for(read_frame(reader), START_TIMEOUT_S)
            if hello[0] != "ready":
                raise WorkerStartError(f"ingest worker {index} did not start: {hello[1]}")
        except BaseException as exc:
            if writer is not None:
                writer.close()
            else:
                parent.close()
            if process.poll() is None:
                process.kill()
            await _ended(process)
            if isinstance(exc, WorkerStartError) or not isinstance(exc, Exception):
                raise
            raise WorkerStartError(f"ingest worker {index} did not start ({exc!r}); its "
                                   "output above says why") from exc
        worker = _Worker(index, process, reader, writer)
        self._slots[index] = worker
        worker.reading = asyncio.create_task(self._read(worker))
        log.info("ingest worker %d started (pid %d)", index, process.pid)
        return worker

    async def _read(self, worker: _Worker) -> None:
        try:
            while True:
                job, status, *payload = await read_frame(worker.reader)
                future = worker.in_flight.pop(job, None)
                if future is not None and not future.done():
                    future.set_result((status, tuple(payload)))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # it ended
        except Exception:
            log.exception("ingest worker %d sent what cannot be read; ending it", worker.index)
            worker.process.kill()
        finally:
            self._lost(worker)

    def _lost(self, worker: _Worker) -> None:
        worker.alive = False
        worker.writer.close()
        lost = Unavailable(f"ingest worker {worker.index} ended while storing the batch; it "
                           "was stored whole or not at all: send it again with the same "
                           "Idempotency-Key")
        for future in worker.in_flight.values():
            if not future.done():
                future.set_exception(lost)
        worker.in_flight.clear()
        if self._stopping:
            return
        task = asyncio.get_running_loop().create_task(self._restart(worker))
        self._restarting.add(task)
        task.add_done_callback(self._restarting.discard)

    async def _restart(self, old: _Worker) -> None:
        code = await _ended(old.process)
        log.error("ingest worker %d (pid %d) ended with exit code %s; starting it again",
                  old.index, old.process.pid, code)
        for attempt in itertools.count():
            try:
                await self._spawn(old.index)
            except Exception as exc:
                if attempt == 0:  # once: it keeps trying, and says when it succeeds
                    log.error("ingest worker %d could not start again: %s", old.index, exc)
                await asyncio.sleep(RESTART_DELAYS_S[min(attempt, len(RESTART_DELAYS_S) - 1)])
                continue
            self.restarts += 1
            if attempt:
                log.info("ingest worker %d is running again", old.index)
            return

    async def ingest(self, raw: bytes, idempotency_key: str | None, scope: str | None,
                     watched: frozenset[str]) -> Outcome:
        """Have the least busy worker store and evaluate the batch `raw` (a request body);
        raise what ingest raised there (SPCError), or Unavailable if no worker can."""
        live = [w for w in self._slots if w is not None and w.alive]
        if not live:
            raise Unavailable("no ingest worker is running (one is being started again); "
                              "retry the batch later")
        worker = min(live, key=lambda w: len(w.in_flight))
        job = next(self._jobs)
        future: asyncio.Future[tuple[str, tuple[Any, ...]]] = (
            asyncio.get_running_loop().create_future())
        worker.in_flight[job] = future
        worker.batches += 1
        write_frame(worker.writer, (job, raw, idempotency_key, scope, watched))
        with contextlib.suppress(ConnectionError):  # then the reader fails the future
            await worker.writer.drain()
        status, payload = await future
        if status == "ok":
            (accepted, duplicates, replayed), events, newest = payload
            return Outcome(IngestResult(accepted=accepted, duplicates=duplicates,
                                        replayed=replayed), events, newest)
        if status == "refused":
            error = payload[0]
            assert isinstance(error, SPCError)
            raise error
        if status == "down":  # the worker lost the database: the same 503 as in the server
            raise ConnectionError(payload[0])
        raise RuntimeError(f"ingest worker {worker.index} failed on a batch: {payload[0]}")

    def state(self) -> list[dict[str, Any]]:
        """Each worker, for /api/v1/health."""
        return [{"worker": i, "state": "running" if w is not None and w.alive else "restarting",
                 "pid": w.process.pid if w is not None else None,
                 "in_flight": len(w.in_flight) if w is not None else 0,
                 "batches": w.batches if w is not None else 0}
                for i, w in enumerate(self._slots)]

    def pids(self) -> list[int]:
        return [w.process.pid for w in self._slots if w is not None and w.alive]

    async def stop(self) -> None:
        """End every worker: each finishes the batches it has (the server stops taking
        requests first), closes its pool and exits; one that does not is killed."""
        self._stopping = True
        restarting = list(self._restarting)
        for task in restarting:
            task.cancel()
        await asyncio.gather(*restarting, return_exceptions=True)
        workers = [w for w in self._slots if w is not None]
        for worker in workers:
            worker.writer.close()
        await asyncio.gather(*(_ended(w.process) for w in workers))
        for worker in workers:
            if worker.reading is not None:
                worker.reading.cancel()


async def _ended(process: subprocess.Popen[bytes]) -> int:
    """Wait for `process` to exit, killing it after STOP_TIMEOUT_S; its exit code."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STOP_TIMEOUT_S
    while process.poll() is None:
        if loop.time() > deadline:
            log.warning("ingest worker pid %d did not exit; killing it", process.pid)
            process.kill()
            return await loop.run_in_executor(None, process.wait)
        await asyncio.sleep(0.02)
    return process.returncode

