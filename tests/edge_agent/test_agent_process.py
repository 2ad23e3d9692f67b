"""`spc agent --config FILE` as a real process: simulator -> agent -> HTTP receiver.

Exactly-once is checked by counting: every sample the agent ever wrote to its buffer (SQLite's
AUTOINCREMENT sequence) must be at the receiver exactly once, where "once" is checked both by
Idempotency-Key (the receiver stores a key once) and by (characteristic, timestamp) across keys.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import yaml

from tests.fixtures.ingest_receiver import IngestReceiver
from tests.fixtures.simulators import RunningSimulator

REPO = Path(__file__).resolve().parents[2]
VARIABLES = ("bore_diameter", "surface_roughness", "spindle_temp")


def write_config(tmp_path: Path, sim: RunningSimulator, url: str, **upload: object) -> Path:
    config = {
        "agent": {"name": "edge-test"},
        "server": {"url": url, "api_key": "${TEST_AGENT_KEY}", "timeout_s": 3},
        "buffer": {"path": str(tmp_path / "buffer.sqlite"), "max_samples": 100_000},
        "upload": {"batch_size": 50, "interval_s": 0.2, "backoff_initial_s": 0.1,
                   "backoff_max_s": 0.5, **upload},
        "heartbeat": {"interval_s": 0.5},
        "sources": [
            {"kind": "opcua", "name": "cnc1-opcua", "endpoint": sim.opcua_endpoint,
             "security": {"policy": "None", "allow_insecure": True},
             "interval_s": 0.1,
             "tags": [{"node_id": f"ns=2;s=Line1.CNC1.{v}", "characteristic": v}
                      for v in VARIABLES]},
            {"kind": "modbus", "name": "cnc1-modbus", "host": "127.0.0.1",
             "port": sim.modbus_port, "interval_s": 0.1,
             "tags": [{"characteristic": f"mb.{v}", "address": 2 * i}
                      for i, v in enumerate(VARIABLES)]},
        ],
    }
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def start_agent(config: Path, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TEST_AGENT_KEY": "agent-secret-123"}
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "spc_cli.main", "agent", "--config",
                                 str(config)], stdout=out, stderr=subprocess.STDOUT,
                                cwd=REPO, env=env)


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def buffer_state(path: Path) -> tuple[int, int]:
    """(samples ever written, samples still buffered), read beside the running agent."""
    db = sqlite3.connect(path)
    try:
        row = db.execute("SELECT seq FROM sqlite_sequence WHERE name='samples'").fetchone()
        depth = db.execute("SELECT count(*) FROM samples").fetchone()[0]
    finally:
        db.close()
    return (row[0] if row else 0), depth


def assert_exactly_once(receiver: IngestReceiver, buffer: Path) -> int:
    written, depth = buffer_state(buffer)
    assert depth == 0
    got = receiver.samples
    assert len(got) == written, f"agent wrote {written} samples, receiver stored {len(got)}"
    twice = [k for k, n in Counter((s["characteristic"], s["ts"]) for s in got).items() if n > 1]
    assert not twice, f"delivered more than once: {twice[:5]}"
    return written


def test_agent_buffers_while_server_is_down_and_delivers_once(
        module_simulator: RunningSimulator, ingest_receiver: IngestReceiver,
        tmp_path: Path) -> None:
    config = write_config(tmp_path, module_simulator, ingest_receiver.url)
    log = tmp_path / "agent.log"
    agent = start_agent(config, log)
    try:
        wait_until(lambda: {s["characteristic"] for s in ingest_receiver.samples} >=
                   {*VARIABLES, *(f"mb.{v}" for v in VARIABLES)}, 20, "samples of every tag")
        assert ingest_receiver.requests[0].headers["authorization"] == "Bearer agent-secret-123"
        ingest_receiver.stop()
        delivered_before = ingest_receiver.sample_count
        time.sleep(0.5)  # let the uploader notice
        depth_down = buffer_state(tmp_path / "buffer.sqlite")[1]
        time.sleep(1.5)
        depth_later = buffer_state(tmp_path / "buffer.sqlite")[1]
        assert depth_later > depth_down + 20, "buffer does not grow while the server is down"
        ingest_receiver.start()
        wait_until(lambda: buffer_state(tmp_path / "buffer.sqlite")[1] < 60, 20,
                   "the backlog to drain")
        assert ingest_receiver.sample_count > delivered_before + depth_later - 60
        beats = len(ingest_receiver.heartbeats)
        wait_until(lambda: len(ingest_receiver.heartbeats) > beats, 5, "a heartbeat")
        hb = ingest_receiver.heartbeats[-1]
        assert hb["agent"] == "edge-test" and hb["dropped"] == 0 and hb["version"]
        assert isinstance(hb["buffer_depth"], int)
        assert {s["name"]: (s["state"], s["last_error"]) for s in hb["sources"]} == {
            "cnc1-opcua": ("connected", None), "cnc1-modbus": ("connected", None)}
    finally:
        agent.send_signal(signal.SIGTERM)
        code = agent.wait(timeout=20)
    text = log.read_text()
    assert code == 0, text
    assert "agent stopped" in text and "agent-secret-123" not in text
    assert "upload failing" in text and "upload recovered" in text
    assert assert_exactly_once(ingest_receiver, tmp_path / "buffer.sqlite") > 100


def test_sigkill_mid_upload_loses_and_duplicates_nothing(
        module_simulator: RunningSimulator, ingest_receiver: IngestReceiver,
        tmp_path: Path) -> None:
    # The receiver stores each batch, then waits before answering: kills land between the
    # server's commit and the agent's ack, the case that needs the idempotency key.
    ingest_receiver.delay_s = 0.3
    config = write_config(tmp_path, module_simulator, ingest_receiver.url, batch_size=20)
    log = tmp_path / "agent.log"
    kills = 0
    for _ in range(4):
        agent = start_agent(config, log)
        wanted = len(ingest_receiver.requests) + 2
        wait_until(lambda n=wanted: len(ingest_receiver.requests) >= n, 20, "uploads to start")
        time.sleep(0.15)  # mid-way through the receiver's pause
        agent.send_signal(signal.SIGKILL)
        agent.wait(timeout=10)
        kills += 1
    assert kills == 4
    ingest_receiver.delay_s = 0.0
    agent = start_agent(config, log)
    wait_until(lambda: buffer_state(tmp_path / "buffer.sqlite")[1] < 40, 20, "the backlog")
    agent.send_signal(signal.SIGTERM)
    assert agent.wait(timeout=20) == 0, log.read_text()
    # Shut down cleanly with a reachable server: the final flush delivers everything.
    assert_exactly_once(ingest_receiver, tmp_path / "buffer.sqlite")
    retried = [k for k, n in Counter(r.key for r in ingest_receiver.requests).items() if n > 1]
    assert retried, "no batch was re-sent after a kill: the test did not hit mid-upload"


def test_full_buffer_drops_the_oldest_and_reports_the_count(
        module_simulator: RunningSimulator, ingest_receiver: IngestReceiver,
        tmp_path: Path) -> None:
    ingest_receiver.ingest_unavailable = True
    config = write_config(tmp_path, module_simulator, ingest_receiver.url)
    data = yaml.safe_load(config.read_text())
    data["buffer"]["max_samples"] = 100
    config.write_text(yaml.safe_dump(data))
    log = tmp_path / "agent.log"
    agent = start_agent(config, log)
    try:
        wait_until(lambda: any(hb["dropped"] > 50 for hb in ingest_receiver.heartbeats), 30,
                   "a heartbeat reporting dropped samples")
        hb = next(hb for hb in reversed(ingest_receiver.heartbeats) if hb["dropped"] > 50)
        assert hb["buffer_depth"] <= 100
        assert buffer_state(tmp_path / "buffer.sqlite")[1] <= 100
        ingest_receiver.ingest_unavailable = False
        wait_until(lambda: ingest_receiver.sample_count > 0, 20, "delivery after the outage")
    finally:
        agent.send_signal(signal.SIGTERM)
        assert agent.wait(timeout=20) == 0, log.read_text()
    # Every sample written was either delivered once or counted as dropped: none vanished.
    written, depth = buffer_state(tmp_path / "buffer.sqlite")
    db = sqlite3.connect(tmp_path / "buffer.sqlite")
    dropped = db.execute("SELECT value FROM counters WHERE name='dropped'").fetchone()[0]
    db.close()
    assert depth == 0 and dropped > 50
    assert ingest_receiver.sample_count + dropped == written
