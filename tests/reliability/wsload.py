"""Many WebSocket clients in one asyncio process, and a slow client that never reads (a raw
socket with a small receive buffer: after the handshake and the login it reads nothing more).
Shared by tests/reliability/test_websocket_load.py, benchmarks/bench_ws_load.py and
benchmarks/soak.py."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import struct
from dataclasses import dataclass, field

import websockets


@dataclass
class Fleet:
    url: str
    api_key: str
    keys: list[str]
    count: int
    points: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)
    _ready: int = 0

    async def start(self, timeout: float = 60) -> None:
        self.points = [0] * self.count
        ready = asyncio.Event()

        async def client(i: int) -> None:
            try:
                async with websockets.connect(self.url, open_timeout=30, max_queue=None,
                                              ping_interval=None) as ws:
                    await ws.send(json.dumps({"auth": self.api_key, "subscribe": self.keys}))
                    first = json.loads(await ws.recv())
                    if first.get("type") != "subscribed":
                        raise RuntimeError(f"refused: {first}")
                    self._ready += 1
                    if self._ready == self.count:
                        ready.set()
                    async for raw in ws:
                        if json.loads(raw).get("type") == "point":
                            self.points[i] += 1
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # reported to the caller
                self.errors.append(f"client {i}: {type(exc).__name__}: {exc}")
                ready.set()

        # connect in waves, so the listen backlog is not the thing being tested
        for i in range(self.count):
            self._tasks.append(asyncio.create_task(client(i)))
            if i % 50 == 49:
                await asyncio.sleep(0.05)
        await asyncio.wait_for(ready.wait(), timeout)
        if self.errors:
            raise RuntimeError(self.errors[:3])

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


class SlowClient:
    """Logs in, subscribes, then never reads: its server-side queue must overflow, not grow,
    and must not slow anyone else."""

    def __init__(self, host: str, port: int, api_key: str, keys: list[str]) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect((host, port))
        nonce = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((
            f"GET /api/v1/ws HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {nonce}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += self.sock.recv(1)
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise RuntimeError(head.decode(errors="replace"))
        self.sock.sendall(self._frame(json.dumps({"auth": api_key, "subscribe": keys})))

    @staticmethod
    def _frame(text: str) -> bytes:
        data = text.encode()
        mask = os.urandom(4)
        header = bytes([0x81])
        if len(data) < 126:
            header += bytes([0x80 | len(data)])
        else:
            header += bytes([0x80 | 126]) + struct.pack("!H", len(data))
        return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data))

    def close(self) -> None:
        self.sock.close()


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise KeyError(name)


async def _run_fleet(url: str, api_key: str, count: int, keys: list[str], slow_port: int) -> None:
    fleet = Fleet(url, api_key, keys, count)
    await fleet.start()
    slow = SlowClient("127.0.0.1", slow_port, api_key, ["*"]) if slow_port else None
    print(json.dumps({"ready": count}), flush=True)
    try:
        while True:
            await asyncio.sleep(2)
            print(json.dumps({"points": sum(fleet.points), "errors": len(fleet.errors)}),
                  flush=True)
    finally:
        await fleet.stop()
        if slow:
            slow.close()


if __name__ == "__main__":  # a fleet in its own process: python -m tests.reliability.wsload
    import sys

    url, key, n, keys, slow_port = sys.argv[1:6]
    asyncio.run(_run_fleet(url, key, int(n), keys.split(","), int(slow_port)))
