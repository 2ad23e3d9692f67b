"""A bounded soak run: the whole chain at a target ingest rate with WebSocket clients attached,
sampling the memory of every process and the queues every few seconds.

    .venv/bin/python benchmarks/soak.py --minutes 30 [--rate 2000] [--clients 100]

Runs on this machine only: a private PostgreSQL + TimescaleDB cluster, `spc server`, a simulator
(10 Hz, two variables) read by a real `spc agent` over an OPC UA subscription, a load generator
posting `--rate` samples/s (batches every 0.5 s over 50 characteristics with known limits, with
a 6-sigma point now and then so alarms and webhooks flow), a webhook receiver
(docs/webhook_receiver.py), `--clients` WebSocket clients in their own process plus one slow
client that never reads.

Every `--interval` seconds it records the RSS of each process (server, agent, simulator,
WebSocket fleet, receiver; for PostgreSQL the private heap, `Anonymous` in smaps_rollup summed
over the cluster's processes, since their RSS and USS count shared_buffers pages as the cache
warms up; the shared memory touched is recorded beside it) and, from /metrics and the
database, the webhook queue (pending), WebSocket drops, samples ingested, the agent's buffer
depth (its heartbeat), and counts ingest errors. At the end it prints a table and a verdict:

- memory flat: the first `--warmup` minutes (default: a third of the run, at least 10 min when
  the run allows, at most half) are warm-up: caches, pools, and PostgreSQL's pooled backends
  growing their caches up to their working set (measured: about 12 minutes here). Per process,
  the mean RSS of the second half of the steady part is within max(5 %, 10 MiB) of the first
  half's;
- queues do not grow: webhook pending and agent buffer depth at the end <= their maximum in the
  first half of the steady part, plus one batch;
- no errors: every ingest request answered 200, the agent's and the fleet's error counts are 0.

The samples are also written as CSV (`--csv`). Exit status 0 if the verdict holds, 1 if not.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
import psutil
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from server.core.localdb import LocalCluster  # noqa: E402
from server.services import webhook_signing  # noqa: E402
from tests.fixtures.net import free_port  # noqa: E402
from tests.fixtures.server import start_live_server  # noqa: E402
from tests.fixtures.simulators import start_simulator  # noqa: E402
from tests.reliability.chain import LINE, agent_config, setup_chain  # noqa: E402
from tests.reliability.wsload import metric  # noqa: E402
from tests.security.helpers import ReceiverProcess  # noqa: E402

SERIES = [f"soak{i:02d}" for i in range(50)]


def rss(proc: psutil.Process | None, children: bool = False) -> float:
    if proc is None:
        return 0.0
    try:
        procs = [proc, *(proc.children(recursive=True) if children else [])]
        return sum(p.memory_info().rss for p in procs) / 2**20
    except psutil.Error:
        return float("nan")


def postgres_private(cluster: LocalCluster) -> float:
    """PostgreSQL's private heap: the `Anonymous` memory of /proc/PID/smaps_rollup summed over
    the cluster's processes. Their RSS (and even USS) counts shared_buffers pages as they are
    touched, which grows as the cache warms up to its configured size; that is not a leak."""
    pid = int((cluster.data_dir / "postmaster.pid").read_text().splitlines()[0])
    main = psutil.Process(pid)
    total = 0
    for p in [main, *main.children(recursive=True)]:
        try:
            text = Path(f"/proc/{p.pid}/smaps_rollup").read_text()
        except OSError:
            continue  # a worker that just exited
        for line in text.splitlines():
            if line.startswith("Anonymous:"):
                total += int(line.split()[1])
    return total / 1024


def postgres_shared(cluster: LocalCluster) -> float:
    """The shared memory PostgreSQL's processes have touched (the postmaster's Shmem)."""
    pid = int((cluster.data_dir / "postmaster.pid").read_text().splitlines()[0])
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("RssShmem:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Generator:
    """Posts `rate` samples/s in batches every 0.5 s, in a thread of its own."""

    def __init__(self, server, rate: int) -> None:
        self.server, self.rate = server, rate
        self.sent = self.errors = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        per_batch = max(1, self.rate // 2)
        n = 0
        with httpx.Client(base_url=self.server.url, timeout=30) as http:
            next_at = time.monotonic()
            while not self.stop.is_set():
                now_us = int(time.time() * 1e6)
                samples = []
                for i in range(per_batch):
                    n += 1
                    value = 16.0 if n % 5000 == 0 else 10.0 + ((n * 7919) % 13 - 6) * 0.05
                    samples.append({"characteristic": SERIES[i % len(SERIES)],
                                    "ts": datetime.fromtimestamp(
                                        (now_us + i // len(SERIES) * 100) / 1e6, UTC).isoformat(),
                                    "value": value})
                try:
                    r = http.post("/api/v1/ingest", json={"agent": "soak-gen", "samples": samples},
                                  headers={**self.server.headers("agent"),
                                           "Idempotency-Key": str(uuid.uuid4())})
                    if r.status_code == 200:
                        self.sent += per_batch
                    else:
                        self.errors += 1
                except httpx.HTTPError:
                    self.errors += 1
                next_at += 0.5
                self.stop.wait(max(0.0, next_at - time.monotonic()))


async def db_figures(dsn: str) -> dict[str, float]:
    conn = await asyncpg.connect(dsn)
    try:
        depth = await conn.fetchval("SELECT coalesce(sum(buffer_depth), 0) FROM agents")
        alarms = await conn.fetchval("SELECT count(*) FROM alarms")
    finally:
        await conn.close()
    return {"agent_buffer_depth": float(depth), "alarms": float(alarms)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=30)
    p.add_argument("--rate", type=int, default=2000, help="generated samples/s")
    p.add_argument("--clients", type=int, default=100)
    p.add_argument("--interval", type=float, default=5.0)
    p.add_argument("--warmup", type=float, default=None,
                   help="minutes excluded from the verdict (default: see above)")
    p.add_argument("--csv", type=Path, default=Path("soak.csv"))
    args = p.parse_args()
    base = Path(tempfile.mkdtemp(prefix="spc-soak-"))
    os.chmod(base, 0o755)
    cluster = LocalCluster(base / "pg", free_port())
    cluster.start()
    started: list = []
    rows: list[dict[str, float]] = []
    try:
        server = start_live_server(cluster, base)
        started.append(server.stop)
        secret = webhook_signing.new_secret()
        receiver = ReceiverProcess(base, secret)
        receiver.start()
        started.append(receiver.stop)
        sim = start_simulator(config=LINE, seed=1, rate=10.0, log_dir=base)
        started.append(sim.stop)
        setup_chain(server, receiver, secret)
        with server.client("engineer") as c:
            for k in SERIES:
                c.post("/characteristics", json={"key": k, "name": k, "baseline_points": 0})
                c.post(f"/characteristics/{k}/limits", json={
                    "center": 10.0, "sigma": 0.2, "reason": "soak",
                    "effective_from": "2020-01-01T00:00:00Z"})
        cfg = agent_config("soak-agent", server, sim)
        cfg["buffer"] = {"path": str(base / "agent.sqlite")}
        (base / "agent.yaml").write_text(yaml.safe_dump(cfg))
        agent_log = open(base / "agent.log", "wb")  # noqa: SIM115
        agent = subprocess.Popen([sys.executable, "-m", "spc_cli.main", "agent", "--config",
                                  str(base / "agent.yaml")], cwd=ROOT, stdout=agent_log,
                                 stderr=subprocess.STDOUT)
        started.append(agent.terminate)
        fleet = subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.wsload", server.ws_url,
             server.keys["operator"], str(args.clients), ",".join(SERIES[:5]), str(server.port)],
            cwd=ROOT, stdout=subprocess.PIPE, text=True)
        started.append(fleet.kill)
        assert json.loads(fleet.stdout.readline())["ready"] == args.clients
        fleet_last: dict = {}

        def read_fleet() -> None:
            for line in fleet.stdout:
                fleet_last.update(json.loads(line))

        threading.Thread(target=read_fleet, daemon=True).start()
        gen = Generator(server, args.rate)
        gen.thread.start()
        started.append(gen.stop.set)
        procs = {"server": psutil.Process(server.process.pid),
                 "agent": psutil.Process(agent.pid), "simulator": psutil.Process(sim.process.pid),
                 "ws_fleet": psutil.Process(fleet.pid),
                 "receiver": psutil.Process(receiver.proc.pid)}
        t_start = time.monotonic()
        end = t_start + args.minutes * 60
        print(f"soak: {args.minutes} min at {args.rate} samples/s + agent, {args.clients} "
              f"WebSocket clients + 1 slow; sampling every {args.interval} s", flush=True)
        while time.monotonic() < end:
            time.sleep(args.interval)
            m = httpx.get(f"{server.url}/metrics", timeout=10).text
            row = {"t_s": round(time.monotonic() - t_start, 1),
                   **{f"rss_{k}_mib": round(rss(p), 1) for k, p in procs.items()},
                   "rss_postgres_private_mib": round(postgres_private(cluster), 1),
                   "postgres_shared_touched_mib": round(postgres_shared(cluster), 1),
                   "webhook_pending": metric(m, 'spc_webhook_queue{state="pending"}'),
                   "ws_dropped": metric(m, "spc_websocket_dropped_total"),
                   "ingested": metric(m, "spc_samples_ingested_total"),
                   "ingest_errors": gen.errors,
                   "fleet_points": fleet_last.get("points", 0),
                   "fleet_errors": fleet_last.get("errors", 0),
                   **asyncio.run(db_figures(server.dsn))}
            rows.append(row)
            print(json.dumps(row), flush=True)
        gen.stop.set()
        gen.thread.join(10)
        agent_alive = agent.poll() is None
    finally:
        for stop in reversed(started):
            try:
                stop()
            except Exception as exc:  # keep stopping the others
                print(f"stop: {exc}", file=sys.stderr)
        cluster.stop("immediate")
        shutil.rmtree(base, ignore_errors=True)

    with args.csv.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    warmup_s = 60 * (args.warmup if args.warmup is not None
                     else min(max(args.minutes / 3, 10.0), args.minutes / 2))
    steady = [r for r in rows if r["t_s"] > warmup_s] or rows
    half = max(1, len(steady) // 2)
    middle, last = steady[:half], steady[-half:]
    ok = True
    print(f"\n{len(rows)} samples over {rows[-1]['t_s'] / 60:.1f} min; "
          f"{rows[-1]['ingested']:.0f} samples ingested "
          f"({rows[-1]['ingested'] / rows[-1]['t_s']:.0f}/s), {rows[-1]['alarms']:.0f} alarms; "
          f"verdict over t > {warmup_s / 60:.1f} min, halves of {half} samples")
    print(f"{'process':<12} {'first MiB':>10} {'steady 1st':>10} {'2nd half':>10} {'growth':>8}"
          "  flat")
    for k in [c for c in rows[0] if c.startswith("rss_")]:
        a = sum(r[k] for r in middle) / len(middle)
        b = sum(r[k] for r in last) / len(last)
        flat = b - a <= max(0.05 * a, 10.0)
        ok &= flat
        name = k[4:-4]
        print(f"{name:<12} {rows[0][k]:>10.1f} {a:>10.1f} {b:>10.1f} {b - a:>+8.1f}  "
              f"{'yes' if flat else 'NO'}")
    for k, slack in (("webhook_pending", 50), ("agent_buffer_depth", 400)):
        peak_mid = max(r[k] for r in middle)
        grows = rows[-1][k] > peak_mid + slack
        ok &= not grows
        print(f"{k}: max {max(r[k] for r in rows):.0f}, end {rows[-1][k]:.0f} "
              f"({'GROWS' if grows else 'does not grow'})")
    errors = rows[-1]["ingest_errors"] + rows[-1]["fleet_errors"] + (0 if agent_alive else 1)
    ok &= errors == 0
    print(f"errors: ingest {rows[-1]['ingest_errors']:.0f}, WebSocket fleet "
          f"{rows[-1]['fleet_errors']:.0f}, agent {'running' if agent_alive else 'EXITED'}; "
          f"WebSocket events dropped (slow client) {rows[-1]['ws_dropped']:.0f}")
    print(f"verdict: {'memory flat, queues bounded, no errors' if ok else 'FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
