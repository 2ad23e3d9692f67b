"""An ingest worker process: stores and evaluates the batches the server hands it.

Started by the server (server.services.ingest_workers, which describes the protocol) with one end
of a socketpair as `--fd`; never started by hand. It runs many batches at once on its own
connection pool, exactly as the server process would (`ingest.ingest_body`), and ends when the
server closes its end: after finishing the batches it has, so a server that stops (or dies) never
leaves a worker behind. SIGINT and SIGTERM are the server's to act on: a Ctrl-C in a terminal or
systemd's stop reach the whole process group, and the server's orderly stop still needs the
workers for the requests it finishes.
"""

from __future__ import annotations

import signal

if __name__ == "__main__":
    # First of all, before the imports below (over a second): a signal meant for the server must
    # not kill a worker while it starts either. Only when run: an importer keeps its signals.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)

import argparse
import asyncio
import gc
import logging
import os
import socket
from collections.abc import Callable, Sequence

import asyncpg

from server.api.errors import DATABASE_DOWN
from server.core import db
from server.core import logging as log_setup
from server.core.config import Settings
from server.exceptions import SPCError
from server.services import ingest as ingest_service
from server.services.hub import EVERYTHING
from server.services.ingest_workers import encode_frame, read_frame, write_frame

log = logging.getLogger("spc.ingest_worker")


def watcher(watched: frozenset[str]) -> Callable[[str], bool]:
    if EVERYTHING in watched:
        return lambda key: True
    return watched.__contains__


async def run_job(pool: asyncpg.Pool, settings: Settings, writer: asyncio.StreamWriter,
                  job: int, raw: bytes, idempotency_key: str | None, scope: str | None,
                  watched: frozenset[str]) -> None:
    try:
        result, events, newest = await ingest_service.ingest_body(
            pool, raw, idempotency_key, settings.max_batch_samples, settings.max_future_skew_s,
            scope=scope, watched=watcher(watched))
        reply: tuple[object, ...] = (
            job, "ok", (result.accepted, result.duplicates, result.replayed), events, newest)
    except SPCError as exc:
        reply = (job, "refused", exc)
    except DATABASE_DOWN as exc:
        reply = (job, "down", str(exc))
    except Exception as exc:
        log.exception("ingest worker: a batch failed")
        reply = (job, "failed", f"{type(exc).__name__}: {exc}")
    if not writer.is_closing():
        writer.write(reply_frame(reply))


def reply_frame(reply: tuple[object, ...]) -> bytes:
    """The frame of `reply`, or of a "failed" reply saying why it cannot be sent: the server's
    request must get an answer whatever a batch produced."""
    try:
        return encode_frame(reply)
    except Exception as exc:
        log.exception("ingest worker: the reply to a batch cannot be sent")
        return encode_frame((reply[0], "failed",
                             f"its reply cannot be sent: {type(exc).__name__}: {exc}"))


async def serve(sock: socket.socket) -> int:
    reader, writer = await asyncio.open_unix_connection(sock=sock)
    settings = Settings.model_validate_json(await read_frame(reader))
    log_setup.configure(settings.log_level, settings.log_format)
    try:
        pool = await db.create_pool(settings.database_url, 1, settings.pool_max_size)
    except Exception as exc:  # told to the server, which reports it and does not start
        write_frame(writer, ("failed", f"cannot open the database: {exc}"))
        await writer.drain()
        return 1
    gc.collect()
    gc.freeze()  # as in the server: full collections must not walk the startup objects
    write_frame(writer, ("ready", os.getpid()))
    jobs: set[asyncio.Task[None]] = set()
    try:
        while True:
            try:
                job, raw, idempotency_key, scope, watched = await read_frame(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                break  # the server closed its end: stopping, or gone
            task = asyncio.create_task(
                run_job(pool, settings, writer, job, raw, idempotency_key, scope, watched))
            jobs.add(task)
            task.add_done_callback(jobs.discard)
        if jobs:
            await asyncio.gather(*jobs)
    finally:
        await pool.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m server.ingest_worker",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--fd", type=int, required=True,
                        help="the worker's end of the socketpair the server made")
    args = parser.parse_args(argv)
    try:
        sock = socket.socket(fileno=args.fd)
    except OSError as exc:
        parser.error(f"--fd {args.fd} is not an open socket: {exc}")
    try:
        import uvloop
    except ImportError:  # the event loop uvicorn would use, when installed
        return asyncio.run(serve(sock))
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(serve(sock))


if __name__ == "__main__":
    raise SystemExit(main())
