"""Small helpers the server tests share: sample batches and a WebSocket listener."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

from websockets.sync.client import connect

T0 = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)


def samples(key: str, values: list[float | None], start: int = 0,
            step: timedelta = timedelta(seconds=1), t0: datetime = T0) -> list[dict[str, Any]]:
    return [
        {"characteristic": key, "ts": (t0 + (start + i) * step).isoformat(),
         "value": v, "quality": "good" if v is not None else "bad"}
        for i, v in enumerate(values)
    ]


def batch_headers(role_headers: dict[str, str], key: str | None = None) -> dict[str, str]:
    return {**role_headers, "Idempotency-Key": key or str(uuid.uuid4())}


class WsListener:
    """Collects every message of one WebSocket subscription on a background thread."""

    def __init__(self, url: str, api_key: str, keys: list[str]) -> None:
        self.messages: list[dict[str, Any]] = []
        self._stack = ExitStack()
        self._ws = self._stack.enter_context(connect(url, open_timeout=10))
        self._ws.send(json.dumps({"auth": api_key, "subscribe": keys}))
        first = json.loads(self._ws.recv(timeout=10))
        if first.get("type") != "subscribed":
            raise AssertionError(f"subscription refused: {first}")
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for raw in self._ws:
                with self._cond:
                    self.messages.append(json.loads(raw))
                    self._cond.notify_all()
        except Exception:  # the connection closed; the test inspects what arrived
            return

    def wait_for(self, predicate, timeout: float = 10.0) -> dict[str, Any]:
        with self._cond:
            ok = self._cond.wait_for(
                lambda: any(predicate(m) for m in self.messages), timeout=timeout
            )
            if not ok:
                raise AssertionError(f"no matching WebSocket message in {timeout}s: "
                                     f"{self.messages[-5:]}")
            return next(m for m in self.messages if predicate(m))

    def close(self) -> None:
        self._stack.close()


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


KNOWN_LIMITS = {"center": 10.0, "sigma": 1.0, "reason": "known",
                "effective_from": "2026-01-01T00:00:00Z"}


def build_plant(client, site: str, lines: list[str], characteristics: list[str]) -> None:
    """Site `site`, each line with one station `<line>-op10` holding I-MR characteristics
    `<line>-<name>` for every name in `characteristics`, with known limits (`KNOWN_LIMITS`).
    `client`: an engineer's."""
    assert client.post("/sites", json={"key": site, "name": site}).status_code == 201
    for line in lines:
        assert client.post("/lines", json={"key": line, "name": line,
                                           "parent": site}).status_code == 201
        assert client.post("/stations", json={"key": f"{line}-op10", "name": "OP10",
                                              "parent": line}).status_code == 201
        for name in characteristics:
            key = f"{line}-{name}"
            r = client.post("/characteristics", json={"key": key, "name": name,
                                                      "station": f"{line}-op10",
                                                      "baseline_points": 0})
            assert r.status_code == 201, r.text
            r = client.post(f"/characteristics/{key}/limits", json=KNOWN_LIMITS)
            assert r.status_code == 201, r.text
