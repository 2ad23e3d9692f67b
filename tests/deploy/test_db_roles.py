"""deploy/db-init/10-spc-roles.sh on a real PostgreSQL + TimescaleDB, as the container runs it.

The timescale/timescaledb image creates the extension in $POSTGRES_DB, then runs our script as
the superuser. Here the same script runs (with psql, twice: it must be idempotent) against a
fresh database of the test cluster; then the server's migrations run as the `spc` role it
created, and every Grafana dashboard query runs as `grafana_reader`. The test cluster trusts
local connections, so passwords are set but not checked here.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import asyncpg
import pytest

from server.core import db
from server.core.localdb import LocalCluster
from tests.dashboards.test_grafana_sql import _queries, expand
from tests.fixtures.db import new_database

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "deploy" / "db-init" / "10-spc-roles.sh"


def as_role(dsn: str, role: str) -> str:
    return dsn.replace("postgresql://postgres@", f"postgresql://{role}@", 1)


def run_script(cluster: LocalCluster, dbname: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(SCRIPT)], capture_output=True, text=True, timeout=60,
        env={**os.environ, "PGHOST": "127.0.0.1", "PGPORT": str(cluster.port),
             "POSTGRES_USER": "postgres", "POSTGRES_DB": dbname, **env},
    )


@pytest.fixture(scope="module")
async def roles_db(pg_cluster: LocalCluster) -> str:
    dsn = new_database(pg_cluster)
    dbname = dsn.rsplit("/", 1)[1]
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")  # as the image does
    finally:
        await conn.close()
    env = {"SPC_DB_PASSWORD": "s3cret-spc", "GRAFANA_DB_PASSWORD": "s3cret-grafana"}
    for _ in range(2):
        proc = run_script(pg_cluster, dbname, **env)
        assert proc.returncode == 0, proc.stderr
    applied = await db.migrate(as_role(dsn, "spc"))
    assert applied == sorted(applied) and len(applied) >= 3
    return dsn


def test_passwords_are_required(pg_cluster: LocalCluster) -> None:
    proc = run_script(pg_cluster, "postgres", SPC_DB_PASSWORD="x", GRAFANA_DB_PASSWORD="")
    assert proc.returncode != 0 and "GRAFANA_DB_PASSWORD is required" in proc.stderr


async def test_server_role_owns_the_schema_without_superuser(roles_db: str) -> None:
    conn = await asyncpg.connect(as_role(roles_db, "spc"))
    try:
        assert await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = 'spc'") is False
        owner = await conn.fetchval(
            "SELECT tableowner FROM pg_tables WHERE tablename = 'measurements'")
        assert owner == "spc"
        hyper = await conn.fetchval(
            "SELECT count(*) FROM timescaledb_information.hypertables "
            "WHERE hypertable_name = 'measurements'")
        assert hyper == 1
    finally:
        await conn.close()


async def test_grafana_reader_runs_every_dashboard_query(roles_db: str) -> None:
    conn = await asyncpg.connect(as_role(roles_db, "grafana_reader"))
    try:
        for path in sorted((ROOT / "dashboards/grafana/dashboards").glob("*.json")):
            for title, _, raw in _queries(json.loads(path.read_text())):
                await conn.fetch(expand(raw, {"characteristic": "x"}))  # raises if denied
                assert title
    finally:
        await conn.close()


@pytest.mark.parametrize("table", ["api_keys", "webhook_subscriptions", "webhook_outbox",
                                   "ingest_batches"])
async def test_grafana_reader_cannot_read_secrets(roles_db: str, table: str) -> None:
    conn = await asyncpg.connect(as_role(roles_db, "grafana_reader"))
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.fetch(f"SELECT * FROM {table} LIMIT 1")
    finally:
        await conn.close()


async def test_grafana_reader_cannot_write(roles_db: str) -> None:
    conn = await asyncpg.connect(as_role(roles_db, "grafana_reader"))
    try:
        with pytest.raises(asyncpg.PostgresError):
            await conn.execute("INSERT INTO alarm_causes (key, label) VALUES ('x', 'x')")
        with pytest.raises(asyncpg.PostgresError):
            await conn.execute("CREATE TABLE grafana_scratch (x int)")
        assert await conn.fetchval("SHOW default_transaction_read_only") == "on"
        assert await conn.fetchval("SELECT count(*) FROM alarm_causes") > 0
    finally:
        await conn.close()


async def test_backup_and_restore_as_documented(
    pg_cluster: LocalCluster, roles_db: str, tmp_path: Path,
) -> None:
    """deploy/README.md's pg_dump / pre_restore / pg_restore / post_restore sequence."""
    spc = await asyncpg.connect(as_role(roles_db, "spc"))
    try:
        cid = await spc.fetchval("INSERT INTO characteristics (key, name) VALUES ('bk', 'bk') "
                                 "RETURNING id")
        await spc.execute(
            "INSERT INTO measurements (characteristic_id, ts, value) SELECT $1, "
            "'2026-01-01'::timestamptz + i * interval '1 hour', i FROM generate_series(1, 100) i",
            cid)
        chunks = await spc.fetchval("SELECT count(*) FROM show_chunks('measurements')")
        assert chunks >= 4
    finally:
        await spc.close()
    pg = {**os.environ, "PGHOST": "127.0.0.1", "PGPORT": str(pg_cluster.port),
          "PGUSER": "postgres"}
    src = roles_db.rsplit("/", 1)[1]
    dst = f"{src}_restored"

    def sh(*argv: str, **kw: object) -> subprocess.CompletedProcess:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=pg, **kw)
        assert proc.returncode == 0, (argv, proc.stderr)
        return proc

    dump = tmp_path / "spc.dump"
    with open(dump, "wb") as out:
        subprocess.run(["pg_dump", "-Fc", "-d", src], stdout=out, env=pg, check=True, timeout=120)
    sh("psql", "-X", "-v", "ON_ERROR_STOP=1", "-d", "postgres", "-c",
       f'DROP DATABASE IF EXISTS "{dst}"', "-c", f'CREATE DATABASE "{dst}"')
    sh("psql", "-X", "-v", "ON_ERROR_STOP=1", "-d", dst, "-c", "CREATE EXTENSION timescaledb",
       "-c", "SELECT timescaledb_pre_restore()")
    with open(dump, "rb") as dump_in:
        sh("pg_restore", "-d", dst, stdin=dump_in)
    sh("psql", "-X", "-v", "ON_ERROR_STOP=1", "-d", dst, "-c", "SELECT timescaledb_post_restore()",
       "-c", "ANALYZE")
    proc = run_script(pg_cluster, dst, SPC_DB_PASSWORD="a", GRAFANA_DB_PASSWORD="b")
    assert proc.returncode == 0, proc.stderr

    restored = roles_db.rsplit("/", 1)[0] + "/" + dst
    assert await db.migrate(as_role(restored, "spc")) == []  # nothing pending after restore
    conn = await asyncpg.connect(as_role(restored, "grafana_reader"))
    try:
        assert await conn.fetchval("SELECT count(*) FROM measurements m JOIN characteristics c "
                                   "ON c.id = m.characteristic_id WHERE c.key = 'bk'") == 100
        assert await conn.fetchval("SELECT count(*) FROM timescaledb_information.hypertables "
                                   "WHERE hypertable_name = 'measurements'") == 1
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.fetch("SELECT * FROM webhook_subscriptions")
    finally:
        await conn.close()
    spc = await asyncpg.connect(as_role(restored, "spc"))
    try:  # the server's role still owns its tables and can write
        await spc.execute("INSERT INTO measurements (characteristic_id, ts, value) "
                          "SELECT id, '2027-01-01', 1 FROM characteristics WHERE key = 'bk'")
    finally:
        await spc.close()
