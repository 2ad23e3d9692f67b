"""`spc demo` end to end: it starts everything, the six characteristics fill, and SIGINT or
SIGTERM stops every process it started, the database included."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from tests.fixtures.net import free_port, port_answers

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_demo_runs_and_stops_cleanly(stop_signal: int) -> None:
    # a directory the postgres user can reach (pytest's tmp_path is private to root)
    data = Path(tempfile.mkdtemp(prefix="spc-demo-"))
    os.chmod(data, 0o755)
    port, opcua, modbus, control = free_port(), free_port(), free_port(), free_port()
    db_port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "spc_cli.main", "demo", "--data-dir", str(data), "--port",
         str(port), "--opcua-port", str(opcua), "--modbus-port", str(modbus),
         "--control-port", str(control), "--db-port", str(db_port)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 90
        keys = data / "demo-keys.json"
        while not keys.exists() and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read()
            time.sleep(0.5)
        operator = json.loads(keys.read_text())["keys"]["operator"]
        headers = {"Authorization": f"Bearer {operator}"}
        filled: set[str] = set()
        while time.monotonic() < deadline and len(filled) < 6:
            try:
                for c in httpx.get(f"http://127.0.0.1:{port}/api/v1/characteristics",
                                   headers=headers, timeout=5).json():
                    chart = httpx.get(f"http://127.0.0.1:{port}/api/v1/characteristics/"
                                      f"{c['key']}/chart", headers=headers, timeout=5).json()
                    if chart["points"]:
                        filled.add(c["chart_type"])
            except httpx.HTTPError:
                pass
            time.sleep(1)
        assert filled == {"imr", "ewma", "xbar-r", "xbar-s", "p", "c"}
    finally:
        proc.send_signal(stop_signal)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    # everything it started is gone: the database, the server, the simulator's three ports
    still = [p for p in (db_port, port, opcua, modbus, control) if port_answers(p)]
    assert still == [], f"ports still answering after the demo stopped: {still}\n{out}"
    shutil.rmtree(data, ignore_errors=True)
