"""Ingest throughput with and without 500 WebSocket clients (and one that never reads).

    .venv/bin/python benchmarks/bench_ws_load.py [--seconds 15] [--clients 500] [--repeat 2]

A private PostgreSQL + TimescaleDB cluster and `spc server` on loopback; two concurrent posters
send batches of 500 samples (over 20 I-MR characteristics with known limits) as fast as the
server acknowledges them. Phases alternate, `--repeat` times each: without clients, then with
`--clients` WebSocket clients (in their own process, `python -m tests.reliability.wsload`)
watching one characteristic that gets 10 points per batch, plus one slow client subscribed to
everything that never reads. Printed: samples/s per phase, the ratio, WebSocket messages
delivered and dropped. The functional side (no errors, every point delivered, overflow counted)
is tests/reliability/test_websocket_load.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from server.core.localdb import LocalCluster  # noqa: E402
from tests.fixtures.net import free_port  # noqa: E402
from tests.fixtures.server import start_live_server  # noqa: E402
from tests.reliability.wsload import metric  # noqa: E402

SERIES = [f"s{i:02d}" for i in range(20)]


def batch(t0: datetime, n: int, offset: int) -> dict:
    out = []
    for i in range(n):
        k = "watched" if i % 50 == 0 else SERIES[i % len(SERIES)]
        out.append({"characteristic": k, "ts": (t0 + timedelta(milliseconds=offset + i)
                                                ).isoformat(), "value": 10.0 + (i % 7) * 0.1})
    return {"samples": out}


async def measure(server, seconds: float, t0: datetime, state: dict) -> float:
    headers = {**server.headers("agent")}
    sent = 0
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        async def poster() -> None:
            nonlocal sent
            while time.monotonic() < deadline:
                state["offset"] += 500
                r = await http.post("/api/v1/ingest", json=batch(t0, 500, state["offset"]),
                                    headers={**headers, "Idempotency-Key": str(uuid.uuid4())})
                if r.status_code != 200:
                    raise RuntimeError(r.text)
                sent += 500

        start = time.monotonic()
        await asyncio.gather(poster(), poster())
        return sent / (time.monotonic() - start)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--seconds", type=float, default=15)
    p.add_argument("--clients", type=int, default=500)
    p.add_argument("--repeat", type=int, default=2)
    args = p.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-ws-"))
    os.chmod(base, 0o755)
    cluster = LocalCluster(base / "pg", free_port())
    cluster.start()
    server = fleet = None
    try:
        server = start_live_server(cluster, base)
        with server.client("engineer") as c:
            for k in [*SERIES, "watched"]:
                c.post("/characteristics", json={"key": k, "name": k, "baseline_points": 0})
                c.post(f"/characteristics/{k}/limits", json={
                    "center": 10.3, "sigma": 0.2, "reason": "bench",
                    "effective_from": "2020-01-01T00:00:00Z"})
        t0 = datetime(2026, 1, 1, tzinfo=UTC)
        state = {"offset": 0}
        phases = {"without clients": None,
                  f"{args.clients} clients + 1 slow, watching a silent characteristic": "idle",
                  f"{args.clients} clients + 1 slow, watching one that gets 10 of each 500":
                  "watched"}
        rates: dict[str, list[float]] = {name: [] for name in phases}
        asyncio.run(measure(server, 3, t0, state))  # warm-up
        for _ in range(args.repeat):
            for name, watch in phases.items():
                if watch:
                    fleet = subprocess.Popen(
                        [sys.executable, "-m", "tests.reliability.wsload", server.ws_url,
                         server.keys["operator"], str(args.clients), watch, str(server.port)],
                        cwd=ROOT, stdout=subprocess.PIPE, text=True)
                    assert json.loads(fleet.stdout.readline())["ready"] == args.clients
                rates[name].append(asyncio.run(measure(server, args.seconds, t0, state)))
                if fleet:
                    time.sleep(2.5)
                    fleet.terminate()
                    lines = fleet.communicate(timeout=30)[0].splitlines()
                    print(f"  fleet ({watch}): {json.loads(lines[-1]) if lines else {}}",
                          flush=True)
                    fleet = None
        metrics = httpx.get(f"{server.url}/metrics").text
        base_rate = sum(rates["without clients"]) / args.repeat
        for name, values in rates.items():
            mean = sum(values) / len(values)
            print(f"{name}: {', '.join(f'{r:,.0f}' for r in values)} samples/s "
                  f"(mean {mean:,.0f}, {mean / base_rate:.2f} of without)")
        print(f"spc_websocket_dropped_total {metric(metrics, 'spc_websocket_dropped_total'):.0f}")
    finally:
        if fleet:
            fleet.kill()
        if server:
            server.stop()
        cluster.stop("immediate")
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
