"""Shared by the security tests: a characteristic with known limits and an alarm on demand."""

from __future__ import annotations

import httpx

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
