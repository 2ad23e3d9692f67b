"""`spc demo`: the whole system on one machine, on its embedded default.

A private PostgreSQL with TimescaleDB in `.spc/` (or the database at DATABASE_URL), the SPC server,
a simulated machining line serving OPC UA and Modbus, one edge agent per protocol, and a scenario
that shifts the process mean once the baseline limits are in place, so a violation appears within
the first minute. Ctrl-C stops everything, in reverse order.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
SPC = [sys.executable, "-m", "spc_cli.main"]
LINE_CONFIG = Path(__file__).resolve().parent / "demo_line.yaml"
SCENARIO = Path(__file__).resolve().parent / "demo_scenario.yaml"
DB_PORT = 55432
SHIFT_AFTER_S = 35.0  # see SCENARIO

# The demo line's characteristics: six chart kinds, read over OPC UA (polled, subscribed to
# lot counters) and Modbus. `source` says how the agent reads each one.
NODE = "ns=2;s=Line1.CNC1."
CHARACTERISTICS: list[dict[str, Any]] = [
    {"key": "bore_diameter", "name": "Bore diameter", "unit": "mm", "chart_type": "imr",
     "baseline_points": 30, "lsl": 24.985, "usl": 25.015, "target": 25.0,
     "source": {"protocol": "opcua", "node": NODE + "bore_diameter"}},
    {"key": "surface_roughness", "name": "Surface roughness Ra", "unit": "µm",
     "chart_type": "ewma", "options": {"lam": 0.2, "L": 3.0}, "baseline_points": 30,
     "usl": 1.0, "source": {"protocol": "opcua", "node": NODE + "surface_roughness"}},
    {"key": "spindle_temp", "name": "Spindle temperature", "unit": "°C", "chart_type": "xbar-r",
     "subgroup_size": 5, "baseline_points": 8,
     "source": {"protocol": "modbus", "register": 4}},
    {"key": "shaft_length", "name": "Shaft length", "unit": "mm", "chart_type": "xbar-s",
     "subgroup_size": 4, "baseline_points": 8, "lsl": 119.94, "usl": 120.06,
     "source": {"protocol": "modbus", "register": 6}},
    {"key": "defectives", "name": "Defective parts per lot of 50", "unit": "parts",
     "chart_type": "p", "sample_size": 50, "baseline_points": 20,
     "source": {"protocol": "opcua", "node": NODE + "defectives",
                "trigger": NODE + "defectives.lot"}},
    {"key": "scratches", "name": "Scratches per 5 units", "unit": "defects", "chart_type": "c",
     "baseline_points": 20,
     "source": {"protocol": "opcua", "node": NODE + "scratches",
                "trigger": NODE + "scratches.lot"}},
]
HIERARCHY = [("/sites", {"key": "plant", "name": "Demo plant"}),
             ("/lines", {"key": "Line1", "name": "Machining line 1", "parent": "plant"}),
             ("/stations", {"key": "CNC1", "name": "CNC1 turning centre", "parent": "Line1"})]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="spc demo", description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=8000, help="dashboard and API port (8000)")
    p.add_argument("--data-dir", type=Path, default=ROOT / ".spc",
                   help="where the private database, keys and agent buffers live (.spc/)")
    p.add_argument("--database-url", default=os.environ.get("DATABASE_URL"),
                   help="use this PostgreSQL instead of a private one (DATABASE_URL)")
    p.add_argument("--db-port", type=int, default=DB_PORT,
                   help=f"port of the private PostgreSQL ({DB_PORT})")
    p.add_argument("--opcua-port", type=int, default=4840)
    p.add_argument("--modbus-port", type=int, default=5020)
    p.add_argument("--control-port", type=int, default=8081,
                   help="the simulator's disturbance control port (8081)")
    p.add_argument("--rate", type=float, default=2.0,
                   help="how often the agents read, per second (2: every sample of the line)")
    p.add_argument("--no-shift", action="store_true", help="do not inject the scripted mean shift")
    p.add_argument("--exit-after", type=float, default=None, help=argparse.SUPPRESS)
    return p


class Demo:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.dir: Path = args.data_dir.resolve()
        self.children: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.cluster = None
        self.logs = self.dir / "logs"

    # --- database ------------------------------------------------------------------------------
    def database(self) -> str:
        if self.args.database_url:
            return self.args.database_url
        from server.core.localdb import LocalCluster

        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o755)
        self.cluster = LocalCluster(self.dir / "pg", self.args.db_port)
        print(f"• database: private PostgreSQL in {self.cluster.base_dir} "
              f"on port {self.args.db_port}")
        self.cluster.start()
        return self.cluster.create_database("spc")

    def keys(self, dsn: str) -> dict[str, str]:
        """Demo keys, created once and kept in .spc/demo-keys.json (mode 600) for later runs."""
        path = self.dir / "demo-keys.json"
        if path.exists():
            saved = json.loads(path.read_text())
            if saved.get("dsn") == dsn:
                return saved["keys"]
        keys = {}
        for role in ("admin", "engineer", "operator", "agent"):
            out = subprocess.run([*SPC, "keys", "create", "--role", role, "--name", f"demo-{role}",
                                  "--database-url", dsn], capture_output=True, text=True, cwd=ROOT)
            if out.returncode != 0:
                raise SystemExit(f"spc demo: could not create keys: {out.stderr.strip()}")
            keys[role] = out.stdout.strip().splitlines()[-1]
        path.write_text(json.dumps({"dsn": dsn, "keys": keys}, indent=2))
        os.chmod(path, 0o600)
        return keys

    # --- processes -----------------------------------------------------------------------------
    def spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> None:
        self.logs.mkdir(parents=True, exist_ok=True)
        log = open(self.logs / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
        proc = subprocess.Popen(args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                env={**os.environ, **(env or {})}, start_new_session=True)
        self.children.append((name, proc))

    def check_children(self) -> None:
        for name, proc in self.children:
            if proc.poll() is not None:
                raise SystemExit(f"spc demo: {name} exited ({proc.returncode}); "
                                 f"see {self.logs / (name + '.log')}")

    def stop(self) -> None:
        for _name, proc in reversed(self.children):
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for _name, proc in reversed(self.children):
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        if self.cluster is not None:
            self.cluster.stop()

    def wait_http(self, url: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_children()
            try:
                if httpx.get(url, timeout=1).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise SystemExit(f"spc demo: {url} did not answer in {timeout}s; see {self.logs}")

    # --- configuration -------------------------------------------------------------------------
    def create_characteristics(self, admin_key: str) -> None:
        api = f"http://127.0.0.1:{self.args.port}/api/v1"
        headers = {"Authorization": f"Bearer {admin_key}"}
        for path, body in HIERARCHY:
            r = httpx.post(api + path, json=body, headers=headers)
            if r.status_code not in (201, 409):
                raise SystemExit(f"spc demo: cannot create {body['key']}: {r.text}")
        for c in CHARACTERISTICS:
            body = {k: v for k, v in c.items() if k != "source"} | {"station": "CNC1"}
            r = httpx.post(f"{api}/characteristics", json=body, headers=headers)
            if r.status_code not in (201, 409):
                raise SystemExit(f"spc demo: cannot create {c['key']}: {r.text}")

    def agent_config(self, protocol: str, agent_key: str) -> Path:
        from spc_cli.demo_agents import agent_config

        text = agent_config(
            protocol=protocol, server_url=f"http://127.0.0.1:{self.args.port}",
            api_key=agent_key, buffer_path=self.dir / f"buffer-{protocol}.sqlite",
            opcua_port=self.args.opcua_port, modbus_port=self.args.modbus_port,
            interval_s=1.0 / self.args.rate,
            characteristics=[c for c in CHARACTERISTICS
                             if c["source"]["protocol"] == protocol],
        )
        path = self.dir / f"agent-{protocol}.yaml"
        path.write_text(text)
        os.chmod(path, 0o600)
        return path

    def run(self) -> int:
        dsn = self.database()
        keys = self.keys(dsn)
        self.spawn("server", [*SPC, "server"], {"SPC_DATABASE_URL": dsn,
                                                "SPC_PORT": str(self.args.port)})
        self.wait_http(f"http://127.0.0.1:{self.args.port}/api/v1/health")
        self.create_characteristics(keys["admin"])
        scenario = [] if self.args.no_shift else ["--scenario", str(SCENARIO)]
        self.spawn("simulator", [*SPC, "simulate", "--config", str(LINE_CONFIG),
                                 "--opcua-port", str(self.args.opcua_port),
                                 "--modbus-port", str(self.args.modbus_port),
                                 "--control-port", str(self.args.control_port),
                                 "--seed", "7", *scenario])
        self.wait_http(f"http://127.0.0.1:{self.args.control_port}/state")
        for protocol in ("opcua", "modbus"):
            self.spawn(f"agent-{protocol}",
                       [*SPC, "agent", "--config", str(self.agent_config(protocol, keys["agent"]))])
        url = f"http://127.0.0.1:{self.args.port}/"
        print(f"""
shopfloor-spc demo is running.

  Dashboard:  {url}ui/#key={keys['operator']}
  API docs:   {url}docs
  Keys:       {self.dir / 'demo-keys.json'} (admin, engineer, operator, agent)
  Logs:       {self.logs}/

Six characteristics of CNC1 on Line1: I-MR (bore diameter), EWMA (surface roughness),
Xbar-R (spindle temperature), Xbar-S (shaft length), p (defectives per lot), c (scratches).
The first points of each fit its limits (phase I); about {SHIFT_AFTER_S:.0f} s after start the
bore diameter's mean shifts by 3σ and rule violations appear. Press Ctrl-C to stop.
""", flush=True)
        deadline = None if self.args.exit_after is None else time.monotonic() + self.args.exit_after
        while deadline is None or time.monotonic() < deadline:
            time.sleep(0.5)
            self.check_children()
        return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Ctrl-C, and a service manager's SIGTERM, both stop everything in order. Set explicitly:
    # a shell starting the demo in the background hands it SIGINT ignored.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    demo = Demo(args)
    from server.core.localdb import LocalDatabaseError

    try:
        return demo.run()
    except KeyboardInterrupt:
        print("\nstopping…", flush=True)
        return 0
    except LocalDatabaseError as exc:
        print(f"spc demo: {exc}", file=sys.stderr)
        return 1
    finally:
        demo.stop()
