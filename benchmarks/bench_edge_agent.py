"""Edge agent benchmark: CPU share, peak RSS and achieved sample rate of one `spc agent` process.

Scenario A (issue 5): one agent polls 1,000 Modbus registers and subscribes to 1,000 OPC UA nodes,
both at 10 Hz (20,000 samples/s), uploading to an HTTP receiver. Targets: full rate, at most 50%
of one core, at most 100 MB RSS.

Scenario B: the largest number of OPC UA nodes at 1 s that one agent sustains, the nodes spread
over several client connections (one `opcua` source per connection).

The devices run in a separate process (`serve`), the receiver in this process, so the agent's
figures are its own. Run:

    .venv/bin/python benchmarks/bench_edge_agent.py             # both scenarios
    .venv/bin/python benchmarks/bench_edge_agent.py a --seconds 30
    .venv/bin/python benchmarks/bench_edge_agent.py b --nodes 2000,5000,10000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psutil
import yaml

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- devices (run in their own process) --------------------------------------------------------


async def serve(modbus_port: int, registers: int, opcua_port: int, nodes: int,
                rate: float) -> None:
    import logging

    from asyncua import Server, ua
    from pymodbus.server import ModbusTcpServer
    from pymodbus.simulator import DataType, SimData, SimDevice

    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    logging.getLogger("asyncua").setLevel(logging.ERROR)
    if registers:
        bits = [SimData(0, values=[False], datatype=DataType.BITS)]
        hr = [SimData(0, values=list(range(registers)), datatype=DataType.REGISTERS)]
        ir = [SimData(0, values=[0], datatype=DataType.REGISTERS)]
        mb = ModbusTcpServer([SimDevice(1, simdata=(bits, bits, hr, ir))],
                             address=("127.0.0.1", modbus_port))
        await mb.serve_forever(background=True)
    if nodes:
        server = Server()
        await server.init()
        server.set_endpoint(f"opc.tcp://127.0.0.1:{opcua_port}/bench/")
        idx = await server.register_namespace("urn:bench")
        folder = await server.nodes.objects.add_folder(idx, "Bench")
        node_ids = []
        for i in range(nodes):
            node = await folder.add_variable(ua.NodeId(f"v{i}", idx), f"v{i}", 0.0)
            node_ids.append(node.nodeid)
        await server.start()
    print("ready", flush=True)
    tick = 0
    period = 1.0 / rate
    next_at = time.monotonic()
    updates = 0
    started = time.monotonic()
    while True:
        next_at += period
        if nodes:
            now = datetime.now(UTC)
            for i, nid in enumerate(node_ids):
                # Every node changes every tick, so every subscription reports every tick.
                dv = ua.DataValue(ua.Variant(float(tick * 1000 + i), ua.VariantType.Double),
                                  SourceTimestamp=now, ServerTimestamp=now)
                await server.write_attribute_value(nid, dv)
            updates += len(node_ids)
        tick += 1
        if nodes and tick % int(rate * 5) == 0:
            elapsed = time.monotonic() - started
            print(f"server-rate {updates / elapsed:.0f}", flush=True)
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))


# --- receiver ------------------------------------------------------------------------------------


class Receiver:
    """Counts samples per batch and answers 200; decoding is the only work done."""

    def __init__(self) -> None:
        self.port = free_port()
        self.samples = 0
        self.by_kind: dict[str, int] = {"mb": 0, "ua": 0}
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                import gzip

                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path.endswith("/ingest"):
                    if self.headers.get("Content-Encoding") == "gzip":
                        raw = gzip.decompress(raw)
                    samples = json.loads(raw)["samples"]
                    mb = sum(1 for x in samples if x["characteristic"].startswith("mb"))
                    with receiver.lock:
                        receiver.samples += len(samples)
                        receiver.by_kind["mb"] += mb
                        receiver.by_kind["ua"] += len(samples) - mb
                body = b'{"accepted":0,"duplicates":0}'
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


# --- one run ----------------------------------------------------------------------------------


def start_devices(registers: int, nodes: int, rate: float, servers: int
                  ) -> tuple[list[subprocess.Popen[str]], int, list[tuple[int, int, int]]]:
    """One process for Modbus and `servers` for OPC UA, so a busy OPC UA server cannot starve
    the Modbus one and the simulated devices are not the bottleneck being measured.
    Returns the processes, the Modbus port and (port, first node, node count) per OPC UA server."""
    mport = free_port()
    plan: list[tuple[int, int, int, int]] = []  # (modbus port, registers, opcua port, nodes)
    if registers:
        plan.append((mport, registers, 0, 0))
    opcua: list[tuple[int, int, int]] = []
    per = -(-nodes // servers) if nodes else 0
    for first in range(0, nodes, per or 1):
        port = free_port()
        count = min(per, nodes - first)
        opcua.append((port, first, count))
        plan.append((0, 0, port, count))
    procs = []
    for mb_port, regs, ua_port, n in plan:
        proc = subprocess.Popen(
            [sys.executable, __file__, "serve", "--modbus-port", str(mb_port), "--registers",
             str(regs), "--opcua-port", str(ua_port), "--nodes", str(n), "--rate", str(rate)],
            stdout=subprocess.PIPE, text=True, cwd=REPO)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if "ready" not in line:
            raise RuntimeError(f"device process failed: {line}")
        procs.append(proc)
    return procs, mport, opcua


def follow(proc: subprocess.Popen[str], last: dict[int, float]) -> None:
    """Keep each device process's latest self-reported update rate."""
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("server-rate"):
            last[proc.pid] = float(line.split()[1])


def agent_config(tmp: Path, url: str, mport: int, registers: int,
                 opcua: list[tuple[int, int, int]], rate: float, per_connection: int) -> Path:
    sources: list[dict[str, Any]] = []
    if registers:
        sources.append({
            "kind": "modbus", "name": "bench-modbus", "host": "127.0.0.1", "port": mport,
            "interval_s": 1.0 / rate, "timeout_s": 2,
            "tags": [{"characteristic": f"mb{i}", "address": i, "type": "uint16"}
                     for i in range(registers)]})
    for port, first, count in opcua:
        for start in range(0, count, per_connection):
            sources.append({
                "kind": "opcua", "name": f"bench-opcua-{first + start}",
                "endpoint": f"opc.tcp://127.0.0.1:{port}/bench/", "mode": "subscribe",
                "security": {"policy": "None", "allow_insecure": True},  # loopback
                "interval_s": 1.0 / rate, "sampling_interval_ms": 1000.0 / rate,
                "queue_size": 10, "timeout_s": 10,
                "tags": [{"node_id": f"ns=2;s=v{i}", "characteristic": f"ua{first + i}"}
                         for i in range(start, min(count, start + per_connection))]})
    config = {"agent": {"name": "bench"}, "server": {"url": url},
              "buffer": {"path": str(tmp / "buffer.sqlite"), "max_samples": 5_000_000},
              "upload": {"batch_size": 5000, "interval_s": 1.0},
              "heartbeat": {"interval_s": 30}, "sources": sources}
    path = tmp / "agent.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def written(buffer: Path) -> int:
    db = sqlite3.connect(buffer)
    try:
        row = db.execute("SELECT seq FROM sqlite_sequence WHERE name='samples'").fetchone()
        return row[0] if row else 0
    except sqlite3.OperationalError:
        return 0
    finally:
        db.close()


def run(registers: int, nodes: int, rate: float, seconds: float, warmup: float,
        per_connection: int, servers: int) -> dict[str, Any]:
    receiver = Receiver()
    devices, mport, opcua = start_devices(registers, nodes, rate, servers)
    reported: dict[int, float] = {}
    for device in devices:
        threading.Thread(target=follow, args=(device, reported), daemon=True).start()
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        config = agent_config(tmp, f"http://127.0.0.1:{receiver.port}", mport, registers,
                              opcua, rate, per_connection)
        log = (tmp / "agent.log").open("wb")  # kept in the result on failure
        agent = subprocess.Popen([sys.executable, "-m", "spc_cli.main", "agent", "--config",
                                  str(config), "--log-level", "WARNING"], cwd=REPO,
                                 stdout=log, stderr=subprocess.STDOUT)
        try:
            proc = psutil.Process(agent.pid)
            time.sleep(warmup)
            cpu0 = proc.cpu_times()
            others = {"devices": [psutil.Process(d.pid) for d in devices],
                      "bench+receiver": [psutil.Process()]}
            other0 = {k: sum(sum(p.cpu_times()[:2]) for p in v) for k, v in others.items()}
            w0, r0, t0 = written(tmp / "buffer.sqlite"), receiver.samples, time.monotonic()
            k0 = dict(receiver.by_kind)
            rss_max = 0
            while time.monotonic() - t0 < seconds:
                rss_max = max(rss_max, proc.memory_info().rss)
                time.sleep(0.25)
            cpu1 = proc.cpu_times()
            other1 = {k: sum(sum(p.cpu_times()[:2]) for p in v) for k, v in others.items()}
            w1, r1, t1 = written(tmp / "buffer.sqlite"), receiver.samples, time.monotonic()
            k1 = dict(receiver.by_kind)
            with open(f"/proc/{agent.pid}/status") as f:
                hwm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM"))
        finally:
            agent.terminate()
            agent.wait(30)
            for device in devices:
                device.terminate()
                device.wait(10)
            receiver.server.shutdown()
        errors = (tmp / "agent.log").read_text()[-2000:]
        if os.environ.get("BENCH_KEEP_LOG"):
            Path(os.environ["BENCH_KEEP_LOG"]).write_text((tmp / "agent.log").read_text())
    elapsed = t1 - t0
    cpu = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / elapsed
    target = (registers + nodes) * rate
    return {"modbus_registers": registers, "opcua_nodes": nodes, "rate_hz": rate,
            "opcua_connections": sum(-(-c // per_connection) for _, _, c in opcua),
            "opcua_server_processes": len(opcua),
            "target_per_s": target, "written_per_s": round((w1 - w0) / elapsed),
            "delivered_per_s": round((r1 - r0) / elapsed),
            "modbus_delivered_per_s": round((k1["mb"] - k0["mb"]) / elapsed),
            "opcua_delivered_per_s": round((k1["ua"] - k0["ua"]) / elapsed),
            "opcua_server_updates_per_s": round(sum(reported.values())) if reported else None,
            "cpu_share_of_one_core": round(cpu, 3), "rss_peak_mb": round(max(hwm, rss_max) / 2**20,
                                                                          1),
            "seconds": round(elapsed, 1),
            "other_cpu": {k: round((other1[k] - other0[k]) / elapsed, 2) for k in other0},
            "agent_log_tail": errors.strip()[-500:]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what")
    s = sub.add_parser("serve")
    s.add_argument("--modbus-port", type=int, required=True)
    s.add_argument("--registers", type=int, default=1000)
    s.add_argument("--opcua-port", type=int, required=True)
    s.add_argument("--nodes", type=int, default=1000)
    s.add_argument("--rate", type=float, default=10)
    a = sub.add_parser("a", help="1,000 Modbus registers + 1,000 OPC UA nodes at 10 Hz")
    a.add_argument("--seconds", type=float, default=30)
    a.add_argument("--per-connection", type=int, default=1000)
    a.add_argument("--registers", type=int, default=1000)
    a.add_argument("--nodes", type=int, default=1000)
    a.add_argument("--servers", type=int, default=2, help="OPC UA server processes")
    b = sub.add_parser("b", help="largest OPC UA node count at 1 s")
    b.add_argument("--nodes", default="1000,3000,5000,10000")
    b.add_argument("--seconds", type=float, default=30)
    b.add_argument("--per-connection", type=int, default=2500)
    b.add_argument("--servers", type=int, default=2, help="OPC UA server processes")
    args = parser.parse_args(argv)
    if args.what == "serve":
        asyncio.run(serve(args.modbus_port, args.registers, args.opcua_port, args.nodes,
                          args.rate))
        return 0
    results = []
    if args.what in (None, "a"):
        results.append(run(getattr(args, "registers", 1000), getattr(args, "nodes", 1000),
                           10.0, getattr(args, "seconds", 30), 8.0,
                           getattr(args, "per_connection", 1000), getattr(args, "servers", 2)))
        print(json.dumps(results[-1]), flush=True)
    if args.what in (None, "b"):
        for n in [int(x) for x in getattr(args, "nodes", "1000,3000,5000,10000").split(",")]:
            results.append(run(0, n, 1.0, getattr(args, "seconds", 30), 10.0 + n / 1000,
                               getattr(args, "per_connection", 2500), getattr(args, "servers", 2)))
            print(json.dumps(results[-1]), flush=True)
    print(f"cpus={os.cpu_count()} python={sys.version.split()[0]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
