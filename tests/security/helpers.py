"""Shared by the security and reliability tests: a characteristic with known limits, an alarm on
demand, and docs/webhook_receiver.py as a process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx

from tests.fixtures.net import free_port, wait_for_port
from tests.fixtures.server import LiveServer
from tests.server.helpers import batch_headers, samples


def characteristic(server: LiveServer, key: str) -> None:
    with server.client("engineer") as c:
        r = c.post("/characteristics", json={"key": key, "name": key, "baseline_points": 0})
        assert r.status_code == 201, r.text
        r = c.post(f"/characteristics/{key}/limits", json={
            "center": 10.0, "sigma": 1.0, "reason": "known process",
            "effective_from": "2026-01-01T00:00:00Z"})
        assert r.status_code == 201, r.text


def raise_alarm(server: LiveServer, key: str, start: int = 0) -> None:
    """One point beyond the UCL (we1): one alarm.opened event."""
    r = httpx.post(f"{server.url}/api/v1/ingest",
                   json={"samples": samples(key, [10.0, 10.2, 20.0], start=start)},
                   headers=batch_headers(server.headers("agent")), timeout=30)
    assert r.status_code == 200, r.text


ROOT = Path(__file__).resolve().parents[2]
RECEIVER = ROOT / "docs" / "webhook_receiver.py"


class ReceiverProcess:
    def __init__(self, tmp: Path, secret: str) -> None:
        self.port = free_port()
        self.out = tmp / "events.jsonl"
        self.args = [sys.executable, str(RECEIVER), "--port", str(self.port), "--secret", secret,
                     "--out", str(self.out), "--seen", str(tmp / "seen.sqlite")]
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL)
        wait_for_port(self.port, timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def stats(self) -> dict[str, int]:
        return httpx.get(f"http://127.0.0.1:{self.port}/stats", timeout=5).json()

    def events(self) -> list[dict]:
        if not self.out.exists():
            return []
        return [json.loads(line) for line in self.out.read_text().splitlines()]

    def post(self, headers: dict[str, str], body: bytes) -> int:
        return httpx.post(self.url, content=body, headers=headers, timeout=5).status_code
