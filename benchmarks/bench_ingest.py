"""Sustained ingest with SPC evaluation, against raw COPY into the same hypertable, and the
latency from an ingest request to its alarm on the WebSocket.

    .venv/bin/python benchmarks/bench_ingest.py [--seconds 20] [--clients 4] [--batch 1000]

Everything runs on this machine: a private PostgreSQL + TimescaleDB cluster, `spc server` as a
real uvicorn process, load generators as separate processes posting pre-encoded JSON batches over
loopback HTTP, and a WebSocket client. Figures are printed as a table; the ratios are measured in
the same run, so the machine's load affects both sides alike.

1. Raw COPY: asyncpg `copy_records_to_table` of the same rows, in batches of `--batch`, into the
   `measurements` hypertable of a database migrated with the project's schema: the storage ceiling.
2. Ingest: `--clients` processes (agents) each posting batches of `--batch` samples spread over
   its own share of `--series` I-MR characteristics with known limits (so every batch is
   evaluated with the Western Electric rules), as fast as the server acknowledges them.
3. Latency: one generator at `--rate` samples/s (batches every 100 ms); every 0.5 s one batch also
   carries a 10-sigma point of a watched characteristic; the time from sending that batch to the
   alarm event on the WebSocket, p50/p99.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import websockets

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from server.core import db  # noqa: E402
from server.core.localdb import LocalCluster  # noqa: E402

SPC = [sys.executable, "-m", "spc_cli.main"]
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def body_for(series: list[str], batch: int, start_us: int, rng_seed: int) -> bytes:
    """One batch: `batch` samples spread over `series`, timestamps unique per series."""
    import random

    rng = random.Random(rng_seed)
    per = batch // len(series)
    samples = []
    for s_i, key in enumerate(series):
        for j in range(per):
            ts = T0 + timedelta(microseconds=start_us + j * 1000 + s_i)
            samples.append({"characteristic": key, "ts": ts.isoformat(),
                            "value": rng.gauss(10.0, 1.0) * 0.3 + 7.0})
    return json.dumps({"agent": "bench", "samples": samples}).encode()


def generator(url: str, key: str, series: list[str], batch: int, seconds: float, worker: int,
              bodies_needed: int, ready: mp.Barrier, out: mp.Queue) -> None:
    # Every body is encoded before the clock starts, so the generators' CPU goes to HTTP only.
    bodies = [body_for(series, batch, (worker * 100_000 + i) * 10_000_000, i)
              for i in range(bodies_needed)]

    async def run() -> tuple[int, int]:
        sent = accepted = 0
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            deadline = time.monotonic() + seconds
            for i, body in enumerate(bodies):
                if time.monotonic() >= deadline:
                    break
                r = await client.post("/api/v1/ingest", content=body,
                                      headers={**headers, "Idempotency-Key": f"{worker}-{i}"})
                r.raise_for_status()
                accepted += r.json()["accepted"]
                sent += batch
        return sent, accepted

    ready.wait()
    out.put(asyncio.run(run()))


async def raw_copy(dsn: str, batch: int, seconds: float) -> float:
    await db.migrate(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("INSERT INTO characteristics (key, name) SELECT 's' || g, 'x' "
                           "FROM generate_series(1, 50) g")
        rows_done, i = 0, 0
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            base = T0 + timedelta(seconds=i)
            rows = [(1 + (j % 50), base + timedelta(microseconds=j), 10.0 + j * 1e-6, 0)
                    for j in range(batch)]
            await conn.copy_records_to_table(
                "measurements", records=rows,
                columns=["characteristic_id", "ts", "value", "quality"])
            rows_done += batch
            i += 1
        return rows_done / (time.perf_counter() - start)
    finally:
        await conn.close()


def start_server(dsn: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SPC_DATABASE_URL": dsn, "SPC_PORT": str(port),
           "SPC_LOG_LEVEL": "warning", "SPC_POOL_MAX_SIZE": "20"}
    proc = subprocess.Popen([*SPC, "server"], env=env, cwd=ROOT, stdout=open(log, "wb"),  # noqa: SIM115
                            stderr=subprocess.STDOUT)
    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"server did not start; see {log}")


def key(dsn: str, role: str) -> str:
    out = subprocess.run([*SPC, "keys", "create", "--role", role, "--database-url", dsn],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    return out.stdout.strip().splitlines()[-1]


def setup_series(url: str, admin: str, keys: list[str]) -> None:
    with httpx.Client(base_url=url + "/api/v1", headers={"Authorization": f"Bearer {admin}"},
                      timeout=30) as c:
        for k in keys:
            c.post("/characteristics", json={"key": k, "name": k, "baseline_points": 0})
            r = c.post(f"/characteristics/{k}/limits", json={
                "center": 10.0, "sigma": 1.0, "reason": "bench",
                "effective_from": "2025-01-01T00:00:00Z"})
            r.raise_for_status()


async def latency(url: str, agent: str, operator: str, series: list[str], rate: int,
                  per_second: int, seconds: float) -> list[float]:
    """ms from sending a batch with a 10-sigma point to its alarm event on the WebSocket."""
    ws_url = url.replace("http", "ws") + "/api/v1/ws"
    sent_at: dict[str, float] = {}
    got: list[float] = []
    batch = rate // per_second
    every = max(1, per_second // 2)  # a 10-sigma point every 0.5 s
    ticks = int(seconds * per_second)
    bodies: list[tuple[bytes, str | None]] = []
    for tick in range(ticks):  # encoded before the clock starts
        base_us = 5_000_000_000_000 + tick * 1_000_000
        body = json.loads(body_for(series, batch, base_us, tick))
        ts = (T0 + timedelta(microseconds=base_us)).isoformat()
        signal = tick % every == every - 1
        body["samples"].append({"characteristic": "watched", "ts": ts,
                                "value": 20.0 if signal else 10.0})
        bodies.append((json.dumps(body).encode(), ts if signal else None))
    async with websockets.connect(ws_url) as ws, httpx.AsyncClient(base_url=url,
                                                                    timeout=30) as client:
        await ws.send(json.dumps({"auth": operator, "subscribe": ["watched"]}))
        await ws.recv()

        async def listen() -> None:
            async for raw in ws:
                msg = json.loads(raw)
                if msg["type"] == "alarm" and msg["alarm"]["last_ts"] in sent_at:
                    got.append((time.perf_counter() - sent_at.pop(msg["alarm"]["last_ts"])) * 1e3)

        listener = asyncio.create_task(listen())
        headers = {"Authorization": f"Bearer {agent}", "Content-Type": "application/json"}
        start = time.perf_counter()
        for tick, (content, signal_ts) in enumerate(bodies):
            if signal_ts is not None:
                sent_at[signal_ts] = time.perf_counter()
            await client.post("/api/v1/ingest", content=content, headers=headers)
            await asyncio.sleep(max(0.0, start + (tick + 1) / per_second - time.perf_counter()))
        await asyncio.sleep(1.0)
        listener.cancel()
    return got


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--series", type=int, default=50)
    p.add_argument("--rate", type=int, default=10_000, help="latency phase: samples per second")
    p.add_argument("--batches-per-second", type=int, default=10,
                   help="latency phase: requests per second carrying --rate samples")
    args = p.parse_args(argv)

    base = Path(tempfile.mkdtemp(prefix="spc-bench-"))
    os.chmod(base, 0o755)
    cluster = LocalCluster(base / "pg", free_port())
    cluster.start()
    server = None
    try:
        raw = asyncio.run(raw_copy(cluster.create_database("raw"), args.batch, args.seconds))
        dsn = cluster.create_database("srv")
        port = free_port()
        admin, agent, operator = key(dsn, "admin"), key(dsn, "agent"), key(dsn, "operator")
        server = start_server(dsn, port, base / "server.log")
        url = f"http://127.0.0.1:{port}"
        series = [f"s{i}" for i in range(args.series)]
        setup_series(url, admin, [*series, "watched"])

        out: mp.Queue = mp.Queue()
        ready = mp.Barrier(args.clients + 1)
        # more bodies than even raw COPY could take in the time, so no client runs dry
        needed = max(64, int(raw * args.seconds / args.batch / args.clients) + 8)
        # Each client is one agent with series of its own, as on a plant floor: batches of
        # different agents touch different characteristics and are evaluated in parallel.
        own = [series[w::args.clients] for w in range(args.clients)]
        procs = [mp.Process(target=generator, args=(url, agent, own[w], args.batch,
                                                    args.seconds, w, needed, ready, out))
                 for w in range(args.clients)]
        for proc in procs:
            proc.start()
        ready.wait()
        start = time.perf_counter()
        results = [out.get() for _ in procs]
        elapsed = time.perf_counter() - start
        for proc in procs:
            proc.join()
        accepted = sum(a for _, a in results)
        ingest_rate = accepted / elapsed

        lat = asyncio.run(latency(url, agent, operator, series, args.rate,
                                  args.batches_per_second, args.seconds))
        print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
        print(f"raw asyncpg COPY into the hypertable, batches of {args.batch}: "
              f"{raw:,.0f} rows/s")
        print(f"ingest + SPC over HTTP, {args.clients} clients, batches of {args.batch} over "
              f"{args.series} series: {ingest_rate:,.0f} samples/s "
              f"({accepted:,} in {elapsed:.1f} s) = {ingest_rate / raw:.2f} of raw COPY")
        if lat:
            print(f"ingest request -> alarm on the WebSocket at {args.rate:,} samples/s "
                  f"({args.batches_per_second} requests/s): "
                  f"p50 {pct(lat, 0.5):.1f} ms, p99 {pct(lat, 0.99):.1f} ms over {len(lat)} alarms")
        else:
            print("latency: no alarm events received")
        return 0
    finally:
        if server is not None:
            server.terminate()
            server.wait(10)
        cluster.stop("immediate")
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
