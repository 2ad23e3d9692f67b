"""Ingest worker processes (SPC_INGEST_WORKERS): the same answers as the server process, batches
spread over the workers, a killed worker losing nothing, no worker outliving its server.

The ingest contract itself (duplicates, replays, SPC, alarms, live events) runs with workers in
test_ingest_paths.py, parametrized over both ways."""

from __future__ import annotations

import asyncio
import itertools
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import asyncpg
import httpx
import psutil
import pytest

from server.core.config import Settings, SettingsError
from server.core.localdb import LocalCluster
from server.exceptions import IngestRejected
from server.ingest_worker import reply_frame
from server.services.ingest import INGEST_LOCK_CLASS
from server.services.ingest_workers import HEADER, IngestWorkers, WorkerStartError
from tests.fixtures.net import free_port
from tests.fixtures.server import ROOT, LiveServer, create_key, start_live_server
from tests.server.helpers import (
    T0,
    WsListener,
    batch_headers,
    build_plant,
    samples,
    wait_until,
)


def start(cluster: LocalCluster, tmp: Path, workers: int) -> LiveServer:
    server = start_live_server(cluster, tmp, SPC_INGEST_WORKERS=str(workers),
                               SPC_MAX_BATCH_SAMPLES="500")
    with server.client("engineer") as c:
        build_plant(c, "p", ["lineA", "lineB"], ["0", "1", "2", "3"])
        r = c.post("/characteristics", json={"key": "defects", "name": "d", "chart_type": "p",
                                             "baseline_points": 0})
        assert r.status_code == 201, r.text
    server.keys["scoped"] = create_key(server.dsn, "agent", "line-a", scope="lineA")
    return server


@pytest.fixture(scope="module")
def pair(pg_cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[tuple[LiveServer, LiveServer]]:
    """The same plant on a server without workers and on one with 2."""
    plain = start(pg_cluster, tmp_path_factory.mktemp("plain"), 0)
    workers = start(pg_cluster, tmp_path_factory.mktemp("workers"), 2)
    yield plain, workers
    plain.stop()
    workers.stop()


def health(server: LiveServer) -> dict:
    return httpx.get(server.url + "/api/v1/health", timeout=10).json()


def post(server: LiveServer, body: object, role: str = "agent", key: str | None = None,
         **kw: object) -> httpx.Response:
    return httpx.post(server.url + "/api/v1/ingest", json=body, timeout=30,
                      headers=batch_headers(server.headers(role), key), **kw)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for our purposes (its parent, the server, reaps it)
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()
    except FileNotFoundError:
        return False


NAIVE = {"characteristic": "lineA-0", "ts": "2026-01-05T08:00:00", "value": 1.0}
BAD_REQUESTS = [
    ("not JSON", {"content": b"{\"samples\": [", "headers": {"Content-Type": "application/json"}}),
    ("schema", {"json": {"samples": [{"characteristic": "lineA-0", "ts": "x", "value": 1}]}}),
    ("naive ts", {"json": {"samples": [NAIVE]}}),
    ("unknown key", {"json": {"samples": samples("lineA-0", [1.0]) + samples("nope", [1.0])}}),
    ("value not finite", {"content": b'{"samples": [{"characteristic": "lineA-0", "ts": '
                                     b'"2026-01-05T08:00:00Z", "value": NaN}]}'}),
    ("too many samples", {"json": {"samples": samples("lineA-1", [1.0] * 501)}}),
    ("count not whole", {"json": {"samples": [{"characteristic": "defects", "size": 10,
                                              "ts": "2026-01-05T08:00:00Z", "value": 1.5}]}}),
    ("far future", {"json": {"samples": samples("lineA-0", [1.0], t0=T0 + timedelta(days=3650))}}),
]


@pytest.mark.parametrize("case", BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS])
def test_bad_batches_answer_as_in_the_server_process(pair, case) -> None:
    _, kwargs = case
    answers = []
    for server in pair:
        headers = {**batch_headers(server.headers("agent")), **kwargs.get("headers", {})}
        r = httpx.post(server.url + "/api/v1/ingest", timeout=30, headers=headers,
                       **{k: v for k, v in kwargs.items() if k != "headers"})
        answers.append((r.status_code, r.json()))
    assert answers[0] == answers[1]
    assert 400 <= answers[0][0] < 500 and answers[0][1]["detail"]


def test_a_scoped_key_is_refused_another_line_as_in_the_server_process(pair) -> None:
    batch = samples("lineA-2", [10.0]) + samples("lineB-2", [10.0])
    answers = [post(server, {"samples": batch}, role="scoped") for server in pair]
    assert [a.status_code for a in answers] == [403, 403]
    assert answers[0].json() == answers[1].json()
    assert answers[0].json()["sample"] == 1


def test_nothing_of_a_refused_batch_is_written(pair) -> None:
    _, workers = pair
    batch = samples("lineA-3", [10.0] * 5) + samples("nope", [1.0])
    assert post(workers, {"samples": batch}).status_code == 422
    with workers.client("operator") as c:
        assert c.get("/characteristics/lineA-3/chart").json()["points"] == []


def test_health_and_metrics_report_the_workers(pair) -> None:
    plain, workers = pair
    assert health(plain)["ingest_workers"] == []
    state = health(workers)["ingest_workers"]
    assert [w["state"] for w in state] == ["running", "running"]
    assert all(alive(w["pid"]) for w in state)
    text = httpx.get(workers.url + "/metrics", timeout=10).text
    assert "spc_ingest_workers_running 2\n" in text
    assert "spc_ingest_worker_restarts_total 0\n" in text


def test_concurrent_batches_are_spread_over_the_workers(pair) -> None:
    _, workers = pair
    before = sum(w["batches"] for w in health(workers)["ingest_workers"])
    batches = [samples(f"lineB-{i % 4}", [10.0] * 50, start=1000 + 50 * (i // 4))
               for i in range(40)]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda b: post(workers, {"samples": b}), batches))
    assert [a.json()["accepted"] for a in answers] == [50] * 40
    state = health(workers)["ingest_workers"]
    assert sum(w["batches"] for w in state) - before == 40
    assert all(w["batches"] > 0 for w in state), state


class IngestLock:
    """A characteristic's ingest lock held from the test, as a concurrent batch would hold it:
    a batch of it waits, in flight in its worker, until `release()`."""

    def __init__(self, dsn: str, key: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._conn = self._loop.run_until_complete(asyncpg.connect(dsn))
        self._loop.run_until_complete(self._conn.execute(
            "SELECT pg_advisory_lock($1, id) FROM characteristics WHERE key = $2",
            INGEST_LOCK_CLASS, key))

    def release(self) -> None:
        self._loop.run_until_complete(self._conn.execute("SELECT pg_advisory_unlock_all()"))

    def close(self) -> None:
        self._loop.run_until_complete(self._conn.close())
        self._loop.close()


def test_a_killed_worker_fails_its_batches_with_503_and_a_retry_loses_nothing(
    pg_cluster: LocalCluster, tmp_path: Path
) -> None:
    server = start(pg_cluster, tmp_path, 2)
    try:
        numbers = itertools.count()
        stop = threading.Event()
        answers: list[tuple[str, int, str | None]] = []
        bodies: dict[str, list[dict]] = {}

        def send(key: str, body: list[dict]) -> None:
            bodies[key] = body
            r = post(server, {"samples": body}, key=key)
            answers.append((key, r.status_code, r.headers.get("retry-after")))

        def agent() -> None:  # batch after batch of lineA-1..3 while the worker dies
            while not stop.is_set():
                n = next(numbers)
                send(f"b{n}", samples(f"lineA-{1 + n % 3}", [10.0] * 200, start=200 * (n // 3)))

        lock = IngestLock(server.dsn, "lineA-0")
        try:
            with ThreadPoolExecutor(6) as pool:
                # a batch of lineA-0 waits for the lock on each worker (the least busy one takes
                # the next batch), then the agents go on with the other characteristics
                stuck = []
                for i in range(2):
                    stuck.append(pool.submit(send, f"stuck{i}",
                                             samples("lineA-0", [10.0] * 50, start=50 * i)))
                    wait_until(lambda n=i: sum(w["in_flight"] for w in
                                               health(server)["ingest_workers"]) == n + 1)
                assert [w["in_flight"] for w in health(server)["ingest_workers"]] == [1, 1]
                agents = [pool.submit(agent) for _ in range(3)]
                wait_until(lambda: len(answers) >= 10)
                victim = health(server)["ingest_workers"][0]
                os.kill(victim["pid"], signal.SIGKILL)
                wait_until(lambda: any(k.startswith("stuck") for k, _, _ in answers))
                lock.release()
                for f in stuck:
                    f.result()
                time.sleep(0.5)  # the agents go on, on the other worker and the restarted one
                stop.set()
                for f in agents:
                    f.result()
        finally:
            lock.close()
        failed = [k for k, status, _ in answers if status != 200]
        # the stuck batch on the victim, and any other it had in flight
        assert any(k.startswith("stuck") for k in failed), answers
        assert all(status == 503 and retry == "5" for k, status, retry in answers if k in failed)
        assert sum(1 for k, s, _ in answers if s == 200 and k.startswith("b")) > 10
        wait_until(lambda: [w["state"] for w in health(server)["ingest_workers"]]
                   == ["running", "running"])
        state = health(server)["ingest_workers"]
        assert victim["pid"] not in [w["pid"] for w in state]
        assert all(alive(w["pid"]) for w in state)
        assert "spc_ingest_worker_restarts_total 1\n" in httpx.get(server.url + "/metrics").text
        # the agent's retry of every batch not acknowledged, with the same Idempotency-Key:
        # stored now, or answered from what the victim committed before it died (never the
        # stuck one, which was still waiting for its lock)
        for key in failed:
            r = post(server, {"samples": bodies[key]}, key=key)
            assert r.status_code == 200, r.text
            if key.startswith("stuck"):
                assert r.json() == {"accepted": 50, "duplicates": 0, "replayed": False}
        stored = sum(len(b) for b in bodies.values())
        assert asyncpg_run(server.dsn, "SELECT count(*) FROM measurements") == stored
        assert asyncpg_run(server.dsn, "SELECT count(*) FROM ingest_batches") == len(bodies)
    finally:
        server.stop()


def asyncpg_run(dsn: str, sql: str) -> object:
    async def run() -> object:
        conn = await asyncpg.connect(dsn)
        try:
            return await conn.fetchval(sql)
        finally:
            await conn.close()

    return asyncio.run(run())


@pytest.mark.parametrize("how", ["stopped", "killed"])
def test_no_worker_outlives_its_server(pg_cluster: LocalCluster, tmp_path: Path, how: str) -> None:
    server = start_live_server(pg_cluster, tmp_path, SPC_INGEST_WORKERS="2")
    pids = [w["pid"] for w in health(server)["ingest_workers"]]
    assert len(pids) == 2 and all(alive(p) for p in pids)
    if how == "stopped":
        server.stop()
        assert server.process is not None and server.process.returncode == 0
    else:  # SIGKILL: the workers see their socket close and exit on their own
        server.kill()
    wait_until(lambda: not any(alive(p) for p in pids), timeout=15)


def test_a_batch_in_flight_when_the_server_is_stopped_is_finished(
    pg_cluster: LocalCluster, tmp_path: Path
) -> None:
    server = start(pg_cluster, tmp_path, 2)
    pids = [w["pid"] for w in health(server)["ingest_workers"]]
    lock = IngestLock(server.dsn, "lineA-0")
    try:
        with ThreadPoolExecutor(1) as pool:
            sent = pool.submit(post, server, {"samples": samples("lineA-0", [10.0] * 30)})
            wait_until(lambda: sum(w["in_flight"] for w in health(server)["ingest_workers"]))
            assert server.process is not None
            server.process.send_signal(signal.SIGINT)  # as systemd's stop and Ctrl-C do
            time.sleep(0.5)
            assert server.process.poll() is None  # waiting for the batch, workers up
            assert all(alive(p) for p in pids)
            lock.release()
            assert sent.result().json() == {"accepted": 30, "duplicates": 0, "replayed": False}
        assert server.process.wait(15) == 0
        wait_until(lambda: not any(alive(p) for p in pids), timeout=15)
        assert asyncpg_run(server.dsn, "SELECT count(*) FROM measurements") == 30
    finally:
        lock.close()
        server.stop()


async def test_a_worker_that_cannot_start_is_reported_at_start() -> None:
    nowhere = f"postgresql://postgres@127.0.0.1:{free_port()}/spc"
    workers = IngestWorkers(Settings(database_url=nowhere), 2)
    with pytest.raises(WorkerStartError, match="cannot open the database"):
        await workers.start()
    assert worker_processes() == []  # both ended and reaped, not even a zombie left


def test_a_reply_that_cannot_be_sent_is_answered_as_failed() -> None:
    reply = (7, "ok", (1, 0, False), [{"type": "point", "value": lambda: None}], None)
    (size,) = HEADER.unpack(reply_frame(reply)[:HEADER.size])
    job, status, message = pickle.loads(reply_frame(reply)[HEADER.size:])
    assert (job, status) == (7, "failed") and "cannot be sent" in message
    assert size == len(reply_frame(reply)) - HEADER.size
    fine = (8, "refused", IngestRejected("samples[3]: bad", sample=3))
    job, status, error = pickle.loads(reply_frame(fine)[HEADER.size:])
    assert (job, status, error.body()) == (8, "refused", fine[2].body())


def test_bad_worker_count_is_refused_naming_the_variable() -> None:
    for value in ("-1", "two", "65"):
        with pytest.raises(SettingsError, match="SPC_INGEST_WORKERS"):
            Settings.from_env({"SPC_INGEST_WORKERS": value})
    with pytest.raises(ValueError, match="count"):
        IngestWorkers(Settings(), 0)


@pytest.mark.parametrize("argv,message", [
    ([], "--fd"),
    (["--fd", "987"], "--fd 987 is not an open socket"),
    (["--fd", "x"], "invalid int value"),
])
def test_the_worker_command_refuses_bad_arguments(argv: list[str], message: str) -> None:
    r = subprocess.run([sys.executable, "-m", "server.ingest_worker", *argv], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and message in r.stderr, r.stderr


def test_live_events_reach_a_client_watching_everything(pair) -> None:
    _, workers = pair
    ws = WsListener(workers.ws_url, workers.keys["operator"], ["*"])
    try:
        assert post(workers, {"samples": samples("lineB-3", [10.0, 20.0], start=5000)}
                    ).status_code == 200
        point = ws.wait_for(lambda m: m["type"] == "point" and m["characteristic"] == "lineB-3"
                            and m["violations"])
        assert "we1" in point["violations"]
        alarm = ws.wait_for(lambda m: m["type"] == "alarm" and m["characteristic"] == "lineB-3"
                            and m["alarm"]["rule"] == "we1")
        assert alarm["event"] == "alarm.opened"
    finally:
        ws.close()


def test_a_starting_worker_ignores_the_signals_meant_for_its_server() -> None:
    # as a Ctrl-C or systemd's stop reaches the whole group while a worker is still importing
    worker = subprocess.Popen([sys.executable, "-m", "server.ingest_worker", "--fd", "987"],
                              cwd=ROOT, stderr=subprocess.PIPE)
    time.sleep(0.3)
    worker.send_signal(signal.SIGINT)
    worker.send_signal(signal.SIGTERM)
    _, err = worker.communicate(timeout=60)
    # it lived on to refuse its (bad) --fd, with no KeyboardInterrupt traceback
    assert worker.returncode == 2 and b"--fd 987 is not an open socket" in err, err
    assert signal.getsignal(signal.SIGINT) is not signal.SIG_IGN  # importing it changed nothing


def worker_processes() -> list[psutil.Process]:
    """This process's ingest workers still alive (zombies count: not reaped is left behind)."""
    found = []
    for child in psutil.Process().children():
        try:
            if "server.ingest_worker" in " ".join(child.cmdline()):
                found.append(child)
        except psutil.ZombieProcess:
            found.append(child)  # ended but never reaped: left behind as much as a live one
        except psutil.NoSuchProcess:
            pass
    return found


async def test_stopping_while_a_worker_is_started_again_leaves_no_process(database: str) -> None:
    workers = IngestWorkers(Settings(database_url=database, pool_max_size=2), 2)
    await workers.start()
    try:
        first = workers.pids()
        os.kill(first[0], signal.SIGKILL)
        # its replacement is being started (importing) when the stop comes
        deadline = time.monotonic() + 10
        while not [p for p in worker_processes() if p.pid not in first]:
            assert time.monotonic() < deadline, "no replacement was started"
            await asyncio.sleep(0.02)
    finally:
        await workers.stop()
    assert worker_processes() == []


async def test_a_worker_dying_while_others_start_is_started_again(database: str) -> None:
    workers = IngestWorkers(Settings(database_url=database, pool_max_size=2), 2)
    original = workers._spawn
    calls: list[int] = []

    async def slow_second(index: int):  # worker 1 takes its time; worker 0 dies meanwhile
        calls.append(index)
        worker = await original(index)
        if len(calls) <= 2 and index == 0:
            os.kill(worker.process.pid, signal.SIGKILL)
        elif len(calls) <= 2:
            await asyncio.sleep(3)  # meanwhile worker 0 is started again
        return worker

    workers._spawn = slow_second  # type: ignore[method-assign]
    try:
        await workers.start()
        assert calls == [0, 1, 0]  # the third: worker 0 again, while worker 1 still started
        deadline = time.monotonic() + 30
        while workers.restarts < 1 or len(workers.pids()) < 2:
            assert time.monotonic() < deadline, workers.state()
            await asyncio.sleep(0.05)
        assert [w["state"] for w in workers.state()] == ["running", "running"]
        assert sorted(workers.pids()) == sorted(p.pid for p in worker_processes())
    finally:
        await workers.stop()
    assert worker_processes() == []
