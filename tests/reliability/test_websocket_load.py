"""500 WebSocket clients and one that never reads, during ingest: every ingest request succeeds,
every reading client gets every point, and the slow client's overflow is dropped and counted
(`spc_websocket_dropped_total`) instead of growing a queue or slowing the others. The rate
comparison with and without the clients is a benchmark: benchmarks/bench_ws_load.py."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from server.core.localdb import LocalCluster
from tests.fixtures.server import start_live_server
from tests.reliability.wsload import Fleet, SlowClient, metric
from tests.server.helpers import batch_headers, samples

CLIENTS = 500
POINTS = 200  # on the characteristic the 500 clients watch, in batches of 20
FLOOD = 20_000  # on another one only the slow client watches, in batches of 2,000

pytestmark = pytest.mark.slow


async def test_500_clients_and_a_slow_one(pg_cluster: LocalCluster, tmp_path: Path) -> None:
    server = start_live_server(pg_cluster, tmp_path, SPC_WS_QUEUE_SIZE="100")
    fleet = Fleet(server.ws_url, server.keys["operator"], ["watched"], CLIENTS)
    slow = None
    try:
        with server.client("engineer") as c:
            for k in ("watched", "flood"):
                assert c.post("/characteristics", json={"key": k, "name": k,
                                                        "baseline_points": 0}).status_code == 201
        await fleet.start()
        slow = SlowClient("127.0.0.1", server.port, server.keys["operator"], ["*"])
        statuses = []
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            async def post(body: dict) -> None:
                r = await http.post("/api/v1/ingest", json=body,
                                    headers=batch_headers(server.headers("agent")))
                statuses.append(r.status_code)

            for i in range(FLOOD // 2000):
                await post({"samples": samples("flood", [10.0] * 2000, start=i * 2000)})
            for i in range(POINTS // 20):
                await post({"samples": samples("watched", [10.0] * 20, start=i * 20)})
                await asyncio.sleep(0.2)
            for _ in range(150):  # until every client has every point (or 30 s)
                if min(fleet.points) >= POINTS:
                    break
                await asyncio.sleep(0.2)
            metrics = (await http.get("/metrics")).text
            health = (await http.get("/api/v1/health")).json()
    finally:
        await fleet.stop()
        if slow:
            slow.close()
        server.stop()
    assert statuses == [200] * len(statuses) and len(statuses) == FLOOD // 2000 + POINTS // 20
    assert fleet.errors == []
    assert min(fleet.points) == max(fleet.points) == POINTS, (min(fleet.points),
                                                              max(fleet.points))
    assert health["websocket_clients"] == CLIENTS + 1
    dropped = metric(metrics, "spc_websocket_dropped_total")
    # the slow client got at most its queue (100) plus what the sockets hold; the rest dropped
    assert dropped > FLOOD / 2, dropped
    print(f"{CLIENTS} clients x {POINTS} points each delivered; slow client: {dropped:.0f} of "
          f"{FLOOD + POINTS} events dropped and counted")
