"""Faults across the chain, each on real processes: the PLC goes off the network, the server is
killed, the database crashes, the webhook receiver goes down; and what must hold afterwards.

The simulator serves tests/e2e/disturbance_line.yaml (variables N(100, 1) at 5 Hz); its `shift`
variable is read by one agent over OPC UA (a subscription: every sample once, with its source
timestamp) into `op.shift` and by another over Modbus (polled every 220 ms, slightly slower than
the samples) into `mb.shift`, both scored with the Western Electric rules against the process
standard. Counts are compared end to end: the simulator's /history against the stored rows
(OPC UA: every sample from the first stored one on, none missing and none twice; Modbus: every
stored value is a simulator sample, in order, and no hole in the agent's readings longer than
a few polls), and the violations recorded against spc_core on the simulator's samples (none
missed, none raised twice).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

import asyncpg
import httpx
import pytest

from server.core.localdb import LocalCluster
from server.services import webhook_signing
from tests.e2e.chain import (
    LINE,
    MACHINE,
    create_characteristics,
    map_modbus,
    oracle,
    parse_ts,
    same_value,
    stored,
    subscribe_webhook,
    violations,
    wait_for,
)
from tests.fixtures.db import new_database
from tests.fixtures.net import free_port
from tests.fixtures.server import LiveServer, create_key, start_live_server
from tests.fixtures.simulators import RunningSimulator, wait_connected
from tests.fixtures.webhooks import WebhookReceiver
from tests.server.helpers import WsListener

RATE_HZ = 5.0
MODBUS_POLL_S = 0.22
KEYS = {"op.shift": "we", "mb.shift": "we"}
AGENTS = {"opcua": "e2e-fail-opcua", "modbus": "e2e-fail-modbus"}
SUBJECTS = {f"{AGENTS['opcua']}/m1-opcua", f"{AGENTS['modbus']}/m1-modbus"}


def start_agents(server: LiveServer, sim: RunningSimulator, agent_factory) -> None:
    # Short timeouts and backoffs so that faults and recoveries show within seconds.
    common = {
        "server": {"url": server.url, "api_key": server.agent_key, "timeout_s": 2},
        "upload": {"batch_size": 500, "interval_s": 0.2, "backoff_initial_s": 0.2,
                   "backoff_max_s": 1.0},
        "heartbeat": {"interval_s": 0.5},
    }
    device = {"timeout_s": 1.0, "backoff_initial_s": 0.2, "backoff_max_s": 1.0}
    agent_factory({
        "agent": {"name": AGENTS["opcua"]}, **common,
        "sources": [{"kind": "opcua", "name": "m1-opcua", "endpoint": sim.opcua_endpoint,
                     "security": {"policy": "None", "allow_insecure": True},
                     "mode": "subscribe", "interval_s": 0.1, "queue_size": 20, **device,
                     "tags": [{"node_id": f"ns=2;s=E2E.{MACHINE}.shift",
                               "characteristic": "op.shift"}]}],
    })
    agent_factory({
        "agent": {"name": AGENTS["modbus"]}, **common,
        "sources": [{"kind": "modbus", "name": "m1-modbus", "host": "127.0.0.1",
                     "port": sim.modbus_port, "unit_id": 1, "interval_s": MODBUS_POLL_S,
                     "retries": 0, **device,
                     "tags": [{"characteristic": "mb.shift", "address": 0, "type": "float32"}]}],
    })


async def count_rows(conn: asyncpg.Connection) -> dict[str, int]:
    rows = await conn.fetch(
        "SELECT c.key, count(m.ts) AS n FROM characteristics c LEFT JOIN measurements m "
        "ON m.characteristic_id = c.id WHERE c.key = ANY($1) GROUP BY c.key", list(KEYS))
    return {r["key"]: r["n"] for r in rows}


async def wait_rows(conn: asyncpg.Connection, n: int, timeout: float = 60) -> None:
    async def enough() -> bool:
        counts = await count_rows(conn)
        return len(counts) == len(KEYS) and all(v >= n for v in counts.values())

    await wait_for(enough, timeout, f"{n} rows per characteristic")


async def wait_caught_up(conn: asyncpg.Connection, sim: RunningSimulator, index: int,
                         timeout: float = 60) -> None:
    """Until the simulator produced sample `index` and both characteristics have a row at or
    after its time (OPC UA: that very sample)."""
    async def caught_up() -> bool:
        hist = [h for h in sim.history("shift", machine=MACHINE) if h["index"] == index]
        if not hist:
            return False
        t = parse_ts(hist[0]["ts"])
        newest = await conn.fetch(
            "SELECT c.key, max(m.ts) AS t FROM measurements m JOIN characteristics c "
            "ON c.id = m.characteristic_id WHERE c.key = ANY($1) GROUP BY c.key", list(KEYS))
        return len(newest) == len(KEYS) and all(r["t"] >= t for r in newest)

    await wait_for(caught_up, timeout, f"rows up to simulator sample {index}")


def sample_index(sim: RunningSimulator) -> int:
    return int(sim.value("shift", machine=MACHINE)["index"])


async def check_counts_and_violations(conn: asyncpg.Connection,
                                      sim: RunningSimulator) -> dict[str, int]:
    """Stored rows against the simulator's samples, violations against spc_core; returns the
    number of violations per characteristic."""
    out = {}
    for key in KEYS:
        rows = await stored(conn, key)
        found = [v for v in await violations(conn, key) if v["ts"] <= rows[-1]["ts"]]
        history = sim.history("shift", machine=MACHINE, limit=2000)
        by_ts = {parse_ts(h["ts"]): h for h in history}
        if key.startswith("op."):
            unknown = [r["ts"] for r in rows if r["ts"] not in by_ts]
            assert not unknown, f"{key}: rows at {unknown[:3]} are no simulator samples"
            assert all(same_value(r["value"], by_ts[r["ts"]]["value"]) for r in rows)
            indices = [by_ts[r["ts"]]["index"] for r in rows]
            assert indices == list(range(indices[0], indices[0] + len(indices))), (
                f"{key}: {indices[-1] - indices[0] + 1 - len(indices)} samples missing between "
                f"the first and the last stored one")
            good = [(r["ts"], by_ts[r["ts"]]["value"]) for r in rows]
        else:
            map_modbus(rows, history)  # every value a simulator sample, in order
            gaps = [(b["ts"] - a["ts"]).total_seconds() for a, b in pairwise(rows)]
            # The agent kept reading and buffering through the fault: no hole in its readings
            # longer than a few polls (a late poll on a loaded machine is ~0.5 s at worst).
            assert max(gaps) < 1.5, f"{key}: a {max(gaps):.2f} s hole in the stored readings"
            good = [(r["ts"], r["value"]) for r in rows]
        want = oracle([v for _, v in good], [t for t, _ in good], KEYS[key])
        got = {(v["rule"], v["ts"]) for v in found}
        assert got == want, (f"{key}: violations differ from spc_core on the samples: missing "
                             f"{sorted(want - got)[:5]}, extra {sorted(got - want)[:5]}")
        out[key] = len(found)
    return out


async def check_alarms_delivered_once(conn: asyncpg.Connection, receiver: WebhookReceiver,
                                      secret: str, timeout: float = 30) -> int:
    """Every SPC alarm of KEYS reaches the webhook exactly once (after dedupe by webhook-id), each
    delivery signed; returns the number of alarms."""
    async def all_delivered() -> bool:
        pending = await conn.fetchval(
            "SELECT count(*) FROM webhook_outbox WHERE state <> 'delivered'")
        return pending == 0

    await wait_for(all_delivered, timeout, "every webhook delivered")
    alarm_ids = {r["id"] for r in await conn.fetch(
        "SELECT a.id FROM alarms a JOIN characteristics c ON c.id = a.characteristic_id "
        "WHERE c.key = ANY($1)", list(KEYS))}
    by_webhook_id: dict[str, dict] = {}
    for d in list(receiver.deliveries):
        webhook_signing.verify(secret, d.headers, d.body)
        by_webhook_id.setdefault(d.headers["webhook-id"], d.json)
    delivered = [p["data"]["id"] for p in by_webhook_id.values() if p["data"]["kind"] == "spc"]
    assert sorted(delivered) == sorted(alarm_ids), (
        f"alarms {sorted(alarm_ids)} but webhooks for {sorted(delivered)}")
    return len(alarm_ids)


@pytest.mark.slow
async def test_plc_disconnect_raises_source_down_and_recovery_closes_it(
    live_server: LiveServer, simulator_factory, agent_factory, webhook_receiver: WebhookReceiver,
) -> None:
    sim = simulator_factory(config=LINE, seed=21, rate=RATE_HZ)
    create_characteristics(live_server, KEYS)
    secret = subscribe_webhook(live_server, webhook_receiver.url)
    ws = WsListener(live_server.ws_url, live_server.keys["operator"], ["*"])
    conn = await asyncpg.connect(live_server.dsn)
    try:
        start_agents(live_server, sim, agent_factory)
        await wait_rows(conn, 5)

        def chain_alarms(state: str | None = None) -> list[dict]:
            with live_server.client("operator") as c:
                params = {"kind": "source_down", **({"state": state} if state else {})}
                return [a for a in c.get("/alarms", params=params).json()
                        if a["subject"] in SUBJECTS]

        assert not chain_alarms()
        sim.inject(None, "disconnect", machine=None)  # the whole device leaves the network
        off_at = datetime.now(UTC)

        async def both_down() -> bool:
            return {a["subject"] for a in chain_alarms("open")} == SUBJECTS

        await wait_for(both_down, 30, "a source_down alarm per source")
        opened = {a["subject"]: a for a in chain_alarms("open")}
        for subject, alarm in opened.items():
            msg = ws.wait_for(lambda m, a=alarm: m.get("type") == "alarm"
                              and m["event"] == "alarm.opened" and m["alarm"]["id"] == a["id"],
                              timeout=10)
            assert msg["alarm"]["kind"] == "source_down" and msg["alarm"]["subject"] == subject
        def hooks() -> list:
            return [d for d in list(webhook_receiver.deliveries)
                    if d.json["data"]["kind"] == "source_down"]

        async def hooked() -> bool:
            return {d.json["data"]["subject"] for d in hooks()} == SUBJECTS

        await wait_for(hooked, 15, "a source_down webhook per source")
        assert len(hooks()) == 2
        for d in hooks():
            webhook_signing.verify(secret, d.headers, d.body)

        sim.clear()  # the device comes back
        wait_connected(sim)
        back_at = datetime.now(UTC)

        async def both_closed() -> bool:
            closed = [a for a in chain_alarms("closed") if a["id"] in
                      {o["id"] for o in opened.values()}]
            return len(closed) == len(SUBJECTS)

        await wait_for(both_closed, 30, "both source_down alarms closed on recovery")
        for alarm in opened.values():
            ws.wait_for(lambda m, a=alarm: m.get("type") == "alarm"
                        and m["event"] == "alarm.closed" and m["alarm"]["id"] == a["id"],
                        timeout=10)

        # Samples flow again over both protocols.
        async def flowing_again() -> bool:
            newest = await conn.fetch(
                "SELECT c.key, max(m.ts) AS t FROM measurements m JOIN characteristics c "
                "ON c.id = m.characteristic_id WHERE c.key = ANY($1) GROUP BY c.key", list(KEYS))
            return len(newest) == 2 and all(r["t"] > back_at for r in newest)

        await wait_for(flowing_again, 30, "rows after the recovery")
        # Nothing stored from the time the device was off (OPC UA rows carry the source
        # timestamp; the middle of the outage, away from its edges).
        gap = await conn.fetchval(
            "SELECT count(*) FROM measurements m JOIN characteristics c "
            "ON c.id = m.characteristic_id WHERE c.key = 'op.shift' AND m.ts > $1 AND m.ts < $2",
            off_at + (back_at - off_at) / 2, back_at - (back_at - off_at) / 4)
        assert gap == 0, "OPC UA samples stored from a time the device was off the network"
    finally:
        ws.close()
        await conn.close()


@pytest.fixture
def own_cluster() -> Iterator[LocalCluster]:
    """A PostgreSQL cluster of this test's own (never the session's shared one), to crash."""
    base = Path(tempfile.mkdtemp(prefix="spc-e2e-pg-"))
    os.chmod(base, 0o755)  # the postgres user must reach it when tests run as root
    cluster = LocalCluster(base / "pg", free_port())
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop("immediate")
        shutil.rmtree(base, ignore_errors=True)


def start_durable_server(cluster: LocalCluster, tmp: Path) -> LiveServer:
    """`start_live_server` on a database that commits synchronously, as a production one does.

    The test clusters run with synchronous_commit=off (a throwaway cluster, tuned for speed): a
    commit is acknowledged before its WAL is written, and a kill -9 of the postmaster loses the
    commits of its last moments, which the server had already acknowledged to the agents (seen:
    the last two samples before the crash missing). Per-database settings override the
    cluster's command line, so this database gets synchronous commits before the server opens
    its pool."""
    import subprocess

    dsn = new_database(cluster)
    name = dsn.rsplit("/", 1)[1]
    subprocess.run([str(cluster.bin / "psql"), cluster.dsn(), "-v", "ON_ERROR_STOP=1", "-qc",
                    f'ALTER DATABASE "{name}" SET synchronous_commit = on'], check=True,
                   capture_output=True)
    server = LiveServer(dsn=dsn, port=free_port(), log_path=tmp / "server.log")
    for role in ("admin", "engineer", "operator", "agent"):
        server.keys[role] = create_key(dsn, role)
    server.start()
    return server


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["server", "database"])
async def test_server_or_database_crash_mid_stream_loses_and_repeats_nothing(
    fault: str, pg_cluster: LocalCluster, request: pytest.FixtureRequest, tmp_path: Path,
    simulator_factory, agent_factory, webhook_receiver: WebhookReceiver,
) -> None:
    """Kill -9 of the server, or of the database's postmaster, while samples stream and a shift
    is under way: the agents buffer and deliver everything once the server answers again, each
    violation is recorded once (none missed: compared with spc_core on the simulator's samples)
    and each alarm reaches the webhook once."""
    if fault == "database":
        cluster = request.getfixturevalue("own_cluster")
        server = start_durable_server(cluster, tmp_path)
    else:
        cluster = pg_cluster
        server = start_live_server(cluster, tmp_path)
    conn: asyncpg.Connection | None = None
    try:
        sim = simulator_factory(config=LINE, seed=31, rate=RATE_HZ)
        create_characteristics(server, KEYS)
        secret = subscribe_webhook(server, webhook_receiver.url)
        start_agents(server, sim, agent_factory)
        conn = await asyncpg.connect(server.dsn)
        await wait_rows(conn, 15)
        await conn.close()
        conn = None

        down_at = time.monotonic()
        if fault == "server":
            server.kill()
        else:
            cluster.kill()
        # A 4-sigma shift for 25 samples while nothing can be stored: its alarms can only be
        # raised from what the agents buffered.
        sim.inject("shift", "shift", magnitude=4.0, machine=MACHINE, for_samples=25)
        await asyncio.sleep(4.0)
        if fault == "server":
            server.start()
        else:
            cluster.start()
            deadline = time.monotonic() + 30
            while httpx.get(server.url + "/api/v1/health", timeout=2).json().get(
                    "status") != "ok":
                assert time.monotonic() < deadline, "server did not recover with the database"
                await asyncio.sleep(0.2)
        outage = time.monotonic() - down_at
        end = sample_index(sim) + 10
        conn = await asyncpg.connect(server.dsn)
        await wait_caught_up(conn, sim, end)
        await asyncio.sleep(1.0)
        counts = await check_counts_and_violations(conn, sim)
        assert all(n > 0 for n in counts.values()), f"no violation of the shift: {counts}"
        alarms = await check_alarms_delivered_once(conn, webhook_receiver, secret)
        assert alarms >= 2
        print(f"{fault} down {outage:.1f} s; violations {counts}; {alarms} alarms, each "
              f"delivered once")
    finally:
        if conn is not None:
            await conn.close()
        server.stop()


@pytest.mark.slow
async def test_webhook_receiver_down_and_back_gets_every_alarm_once(
    pg_cluster: LocalCluster, tmp_path: Path, simulator_factory, agent_factory,
    webhook_receiver: WebhookReceiver,
) -> None:
    """The receiver refuses connections while alarms are raised; the server retries with backoff
    (enough attempts to outlast the outage) and, once it is back, every alarm arrives; deduped by
    webhook-id (Standard Webhooks: a receiver must expect redelivery), each exactly once."""
    server = start_live_server(pg_cluster, tmp_path, SPC_WEBHOOK_MAX_ATTEMPTS="40",
                               SPC_WEBHOOK_BACKOFF_BASE_S="0.2", SPC_WEBHOOK_BACKOFF_MAX_S="1")
    conn: asyncpg.Connection | None = None
    try:
        sim = simulator_factory(config=LINE, seed=41, rate=RATE_HZ)
        create_characteristics(server, KEYS)
        secret = subscribe_webhook(server, webhook_receiver.url)
        start_agents(server, sim, agent_factory)
        conn = await asyncpg.connect(server.dsn)
        await wait_rows(conn, 10)
        webhook_receiver.stop()
        sim.inject("shift", "shift", magnitude=4.0, machine=MACHINE, for_samples=20)

        async def retried() -> bool:
            # Alarms of both characteristics, their deliveries failed at least twice each.
            rows = await conn.fetch(
                "SELECT payload->'data'->>'characteristic' AS k, attempts FROM webhook_outbox "
                "WHERE state = 'pending'")
            return {r["k"] for r in rows} >= set(KEYS) and all(r["attempts"] >= 2 for r in rows)

        await wait_for(retried, 30, "failed deliveries being retried")
        await asyncio.sleep(2.0)
        webhook_receiver.start()  # same port
        end = sample_index(sim) + 5
        await wait_caught_up(conn, sim, end)
        alarms = await check_alarms_delivered_once(conn, webhook_receiver, secret)
        attempts = await conn.fetch("SELECT attempts FROM webhook_outbox")
        assert alarms >= 2 and max(r["attempts"] for r in attempts) >= 3
        raw = len(webhook_receiver.deliveries)
        ids = {d.headers["webhook-id"] for d in webhook_receiver.deliveries}
        print(f"{alarms} alarms; {raw} deliveries received for {len(ids)} webhook ids; "
              f"attempts per delivery up to {max(r['attempts'] for r in attempts)}")
    finally:
        if conn is not None:
            await conn.close()
        server.stop()
