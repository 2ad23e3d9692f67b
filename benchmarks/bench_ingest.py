"""Sustained ingest with SPC evaluation, against raw COPY into the same hypertable, and the
latency from an ingest request to its alarm on the WebSocket.

    .venv/bin/python benchmarks/bench_ingest.py [--seconds 20] [--clients 4] [--batch 1000]
        [--series 20] [--rounds 1] [--ingest-workers CORES] [--before DIR]

Everything runs on this machine: a private PostgreSQL + TimescaleDB cluster, `spc server` as a
real uvicorn process (this tree's with `--ingest-workers` worker processes, by default one per
core; the `--before` tree's without), load generators as separate processes posting
pre-encoded JSON batches over loopback HTTP, and a WebSocket client. A *point* is one sample of
one characteristic (one element of a batch's `samples`); the rates below count points stored
(acknowledged as accepted).

Each round, for each server under test (this tree, and with `--before DIR` also the tree in DIR,
e.g. `git archive <commit> | tar -x -C DIR`, run with the same interpreter), in a fresh database:

1. Raw COPY: asyncpg `copy_records_to_table` of rows of the same shape (characteristic, ts, value,
   quality), in batches of `--batch`, one connection, into the `measurements` hypertable of the
   database the server under test is using (the same hypertable, primary key and CHECK included),
   for `--series` characteristics of its own: the storage ceiling, measured right before the
   ingest phase.
2. Ingest: `--clients` processes (agents) each posting batches of `--batch` points spread over
   its own share of `--series` I-MR characteristics with known limits (so every point is
   evaluated with the Western Electric rules, and alarms are raised), with an Idempotency-Key,
   as fast as the server acknowledges them. Printed with its ratio to step 1.
3. Latency: one generator at `--rate` points/s in `--batches-per-second` requests; every 0.5 s
   one batch also carries a 10-sigma point of a watched characteristic; the time from sending
   that batch to the alarm event on the WebSocket, p50/p99.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import psutil
import websockets

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

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


async def raw_copy(dsn: str, batch: int, seconds: float, ids: list[int], day: int) -> float:
    """Rows/s of plain COPY into `measurements` of `dsn`, for characteristics `ids`, at
    timestamps from `day` days after T0 on (apart from everything the server stores)."""
    conn = await asyncpg.connect(dsn)
    try:
        rows_done, i = 0, 0
        offsets = [(ids[j % len(ids)], timedelta(microseconds=j), 10.0 + j * 1e-6)
                   for j in range(batch)]
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            base = T0 + timedelta(days=day, seconds=i)
            rows = [(cid, base + d, v, 0) for cid, d, v in offsets]
            await conn.copy_records_to_table(
                "measurements", records=rows,
                columns=["characteristic_id", "ts", "value", "quality"])
            rows_done += batch
            i += 1
        return rows_done / (time.perf_counter() - start)
    finally:
        backend = conn.get_server_pid()
        await conn.close()
        for _ in range(100):  # gone, so that its CPU time is counted in the postmaster's children
            if not psutil.pid_exists(backend):
                break
            await asyncio.sleep(0.02)


def start_server(dsn: str, port: int, log: Path, root: Path = ROOT,
                 ingest_workers: int = 0) -> subprocess.Popen[bytes]:
    env = {**os.environ, "SPC_DATABASE_URL": dsn, "SPC_PORT": str(port),
           "SPC_LOG_LEVEL": "warning", "SPC_POOL_MAX_SIZE": "20",
           "SPC_INGEST_WORKERS": str(ingest_workers)}
    proc = subprocess.Popen([*SPC, "server"], env=env, cwd=root, stdout=open(log, "wb"),  # noqa: SIM115
                            stderr=subprocess.STDOUT)
    for _ in range(300):
        if proc.poll() is not None:
            break
        try:
            if httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(f"server did not start; see {log}")


def key(dsn: str, role: str, root: Path = ROOT) -> str:
    out = subprocess.run([*SPC, "keys", "create", "--role", role, "--database-url", dsn],
                         capture_output=True, text=True, check=True, cwd=root)
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
                  per_second: int, seconds: float, start_us: int) -> list[float]:
    """ms from sending a batch with a 10-sigma point to its alarm event on the WebSocket."""
    ws_url = url.replace("http", "ws") + "/api/v1/ws"
    sent_at: dict[str, float] = {}
    got: list[float] = []
    batch = rate // per_second
    every = max(1, per_second // 2)  # a 10-sigma point every 0.5 s
    ticks = int(seconds * per_second)
    bodies: list[tuple[bytes, str | None]] = []
    for tick in range(ticks):  # encoded before the clock starts
        base_us = start_us + tick * 1_000_000
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


def cpu_seconds(pid: int, children: bool = False) -> float:
    """User + system CPU time of a process (with `children`: also of its live and finished
    children, e.g. PostgreSQL's postmaster and its backends)."""
    proc = psutil.Process(pid)
    t = proc.cpu_times()
    total = t.user + t.system
    if children:
        total += t.children_user + t.children_system
        for child in proc.children():
            try:
                c = child.cpu_times()
            except psutil.Error:  # ended meanwhile: counted in children_* once reaped
                continue
            total += c.user + c.system
    return total


def ingest_phase(url: str, agent: str, series: list[str], args: argparse.Namespace,
                 raw: float) -> tuple[float, int, float]:
    """(points/s, points accepted, seconds) of `--clients` agents posting as fast as they can."""
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
    return accepted / elapsed, accepted, elapsed


def run_one(cluster: LocalCluster, base: Path, label: str, root: Path, round_no: int,
            args: argparse.Namespace) -> dict:
    dsn = cluster.create_database(f"srv_{label}_{round_no}")
    port = free_port()
    admin, agent, operator = (key(dsn, r, root) for r in ("admin", "agent", "operator"))
    server = start_server(dsn, port, base / f"server-{label}-{round_no}.log", root,
                          args.ingest_workers if label == "this" else 0)
    try:
        url = f"http://127.0.0.1:{port}"
        series = [f"s{i}" for i in range(args.series)]
        setup_series(url, admin, [*series, "watched"])
        ids = asyncio.run(raw_characteristics(dsn, args.series))
        if args.history_days:
            asyncio.run(prefill_history(dsn, args.history_days))
        load0 = os.getloadavg()[0]
        postmaster = int((cluster.data_dir / "postmaster.pid").read_text().split()[0])
        pg0, me0 = cpu_seconds(postmaster, children=True), cpu_seconds(os.getpid())
        raw = asyncio.run(raw_copy(dsn, args.batch, args.seconds, ids, 400 + round_no))
        pg1, me1, srv1 = (cpu_seconds(postmaster, children=True), cpu_seconds(os.getpid()),
                          cpu_seconds(server.pid, children=True))
        rate, accepted, elapsed = ingest_phase(url, agent, series, args, raw)
        pg2, srv2 = (cpu_seconds(postmaster, children=True),
                     cpu_seconds(server.pid, children=True))  # with its ingest workers
        raw_rows = raw * args.seconds
        cpu = {"raw_pg": (pg1 - pg0) / raw_rows * 1e6, "raw_client": (me1 - me0) / raw_rows * 1e6,
               "pg": (pg2 - pg1) / accepted * 1e6, "server": (srv2 - srv1) / accepted * 1e6}
        # after every client's ingest-phase data (client w writes from w * 10^12 us after T0
        # on), so that no latency batch is a late one that re-scores what follows it
        after_ingest = (args.clients + 1) * 1_000_000_000_000
        checkpoints0 = asyncio.run(checkpoints(dsn))
        lat = asyncio.run(latency(url, agent, operator, series, args.rate,
                                  args.batches_per_second, args.seconds, after_ingest))
        cpu["checkpoints"] = asyncio.run(checkpoints(dsn)) - checkpoints0
        return {"label": label, "raw": raw, "rate": rate, "accepted": accepted, "cpu": cpu,
                "elapsed": elapsed, "lat": lat, "load": (load0, os.getloadavg()[0])}
    finally:
        server.terminate()
        server.wait(10)


async def raw_characteristics(dsn: str, count: int) -> list[int]:
    """Characteristics of the raw COPY: in the server's database but never posted to, so the
    raw rows share the hypertable without being anyone's SPC neighbours."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("INSERT INTO characteristics (key, name) SELECT 'raw' || g, 'raw' "
                                "FROM generate_series(1, $1) g RETURNING id", count)
        return [r["id"] for r in rows]
    finally:
        await conn.close()


async def checkpoints(dsn: str) -> int:
    """Checkpoints PostgreSQL has run (timed and requested): one during the latency phase
    makes commits wait for the disk."""
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(
            "SELECT checkpoints_timed + checkpoints_req FROM pg_stat_bgwriter")
    finally:
        await conn.close()


async def prefill_history(dsn: str, days: float) -> None:
    """Every characteristic's past `days` before T0, one point per 10 minutes, as a plant's
    database holds it after months of running: one hypertable chunk per day, which the reads of
    ingest must not all visit."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            """INSERT INTO measurements (characteristic_id, ts, value, quality)
               SELECT c.id, $1::timestamptz - g * interval '10 minutes', 10.0, 0
               FROM characteristics c, generate_series(1, $2::int) g""",
            T0, int(days * 144))
        await conn.execute("ANALYZE measurements")
    finally:
        await conn.close()


def report(r: dict, args: argparse.Namespace) -> None:
    lat = r["lat"]
    latency_text = (f"p50 {pct(lat, 0.5):.1f} ms, p99 {pct(lat, 0.99):.1f} ms over {len(lat)} "
                    f"alarms (largest {', '.join(f'{x:.1f}' for x in sorted(lat)[-3:])})"
                    if lat else "no alarm events received")
    print(f"[{r['label']}] load average {r['load'][0]:.1f} -> {r['load'][1]:.1f}; "
          f"raw COPY {r['raw']:,.0f} rows/s; ingest + SPC {r['rate']:,.0f} points/s "
          f"({r['accepted']:,} in {r['elapsed']:.1f} s) = {r['rate'] / r['raw']:.2f} of raw COPY; "
          f"request -> WebSocket alarm at {args.rate:,} points/s in "
          f"{args.batches_per_second} requests/s: {latency_text}", flush=True)
    c = r["cpu"]
    print(f"[{r['label']}] CPU ms per 1,000 points: raw COPY PostgreSQL {c['raw_pg']:.1f} + "
          f"client {c['raw_client']:.1f}; ingest PostgreSQL {c['pg']:.1f} + server "
          f"{c['server']:.1f}; checkpoints during the latency phase: {c['checkpoints']}",
          flush=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--series", type=int, default=20)
    p.add_argument("--rate", type=int, default=10_000, help="latency phase: points per second")
    p.add_argument("--batches-per-second", type=int, default=10,
                   help="latency phase: requests per second carrying --rate points")
    p.add_argument("--rounds", type=int, default=1,
                   help="measure every server this many times, alternating")
    p.add_argument("--history-days", type=float, default=0.0,
                   help="store this many days of every series' past before measuring "
                        "(one chunk per day, as in a database that has run for months)")
    p.add_argument("--ingest-workers", type=int, default=os.cpu_count() or 1,
                   help="SPC_INGEST_WORKERS of the server of this tree (not of --before); "
                        "default: one per core, as deploy/README.md recommends")
    p.add_argument("--before", type=Path,
                   help="also measure the server of this source tree (e.g. an earlier commit)")
    args = p.parse_args(argv)

    base = Path(tempfile.mkdtemp(prefix="spc-bench-"))
    os.chmod(base, 0o755)
    cluster = LocalCluster(base / "pg", free_port())
    cluster.start()
    servers = [("before", args.before.resolve())] if args.before else []
    servers.append(("this", ROOT))
    results: list[dict] = []
    try:
        print(f"machine: {os.cpu_count()} cores; {args.clients} clients, batches of "
              f"{args.batch} points over {args.series} series; {args.ingest_workers} ingest "
              f"workers; {args.history_days:g} days of history stored before", flush=True)
        for round_no in range(args.rounds):
            for label, root in servers:
                results.append(run_one(cluster, base, label, root, round_no, args))
                report(results[-1], args)
        if args.rounds > 1 or len(servers) > 1:
            print("medians over rounds:")
            for label, _ in servers:
                mine = [r for r in results if r["label"] == label]
                lat = [x for r in mine for x in r["lat"]]
                print(f"  [{label}] ingest {median([r['rate'] for r in mine]):,.0f} points/s, "
                      f"{median([r['rate'] / r['raw'] for r in mine]):.2f} of raw COPY "
                      f"(raw {median([r['raw'] for r in mine]):,.0f} rows/s); latency over all "
                      f"rounds p50 {pct(lat, 0.5) if lat else float('nan'):.1f} ms, "
                      f"p99 {pct(lat, 0.99) if lat else float('nan'):.1f} ms ({len(lat)} alarms)")
                cpu = {k: median([r["cpu"][k] for r in mine]) for k in mine[0]["cpu"]}
                print(f"  [{label}] CPU ms per 1,000 points: raw COPY PostgreSQL "
                      f"{cpu['raw_pg']:.1f} + client {cpu['raw_client']:.1f}; ingest PostgreSQL "
                      f"{cpu['pg']:.1f} + server {cpu['server']:.1f}")
        return 0
    finally:
        cluster.stop("immediate")
        shutil.rmtree(base, ignore_errors=True)


def median(values: list[float]) -> float:
    return statistics.median(values)


if __name__ == "__main__":
    raise SystemExit(main())
