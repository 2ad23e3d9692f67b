"""Database connection, capability detection and migrations.

Migrations are the numbered `server/migrations/NNNN_name.sql` files, applied in order inside one
transaction each, under a PostgreSQL advisory lock so that several servers starting together
migrate once. Applied versions are recorded in `schema_migrations`.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

log = logging.getLogger("spc.db")

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
MIGRATION_LOCK_ID = 0x5350_4301  # "SPC" + 1: an arbitrary, project-unique advisory lock key
_MIGRATION_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


# Set on every pooled connection. PostgreSQL plans each statement for its actual values
# (asyncpg prepares every statement; after five runs PostgreSQL may switch to a generic plan that
# cannot exclude hypertable chunks by the actual time range, and can choose a nested loop that
# turns a one-second chart query into half a minute). And no JIT: the ingest path's window query
# (LATERAL over a batch's characteristics) passes jit_above_cost once a day of samples is stored,
# and every pooled backend then compiles LLVM code for a query that runs in ~40 ms: measured
# 84 ms with JIT (24 ms of it compiling, more once inlining starts at a cost of 500k) against
# ~42 ms without, and the backends' memory grew by the compiled code (docs/reliability.md, Soak).
POOL_SERVER_SETTINGS = {"plan_cache_mode": "force_custom_plan", "jit": "off"}


async def keep_session(conn: asyncpg.Connection) -> None:
    """Release a connection to the pool as it is (asyncpg has already rolled back an open
    transaction and dropped its listeners).

    asyncpg's default reset sends RESET ALL, CLOSE ALL, UNLISTEN * and pg_advisory_unlock_all()
    on every release: one more round trip for every request (2-3 per ingested batch). Nothing
    here leaves session state behind: settings are set transaction-locally
    (`set_config(..., true)`), advisory locks are transaction-scoped, cursors live inside
    transactions and nothing LISTENs on a pooled connection; tests/server/test_db_pool.py checks
    that a connection comes back from ingest as it went in."""


async def create_pool(dsn: str, min_size: int, max_size: int) -> asyncpg.Pool:
    return await asyncpg.create_pool(dsn, min_size=min_size, max_size=max_size,
                                     server_settings=POOL_SERVER_SETTINGS, reset=keep_session)


@dataclass(frozen=True)
class StorageMode:
    """What the database offers, detected at start and reported by /api/v1/health."""

    timescaledb: bool
    timescaledb_version: str | None
    license: str | None  # 'apache' or 'timescale' (community edition), None without TimescaleDB
    postgres_version: str

    @property
    def name(self) -> str:
        if not self.timescaledb:
            return "postgresql"
        return f"timescaledb-{self.license or 'unknown'}"

    @property
    def has_policies(self) -> bool:
        """Compression, retention and continuous-aggregate policies need the community edition."""
        return self.timescaledb and self.license == "timescale"


def migration_files() -> list[tuple[int, str, Path]]:
    found = []
    for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
        m = _MIGRATION_NAME.match(path.name)
        if not m:
            raise RuntimeError(f"migration file {path.name!r} is not named NNNN_name.sql")
        found.append((int(m.group(1)), m.group(2), path))
    return found


async def enable_timescaledb(conn: asyncpg.Connection, mode: str) -> None:
    """Create the extension when the server may and the database can; otherwise carry on with
    plain tables. A role that is not a superuser may be unable even to look (it cannot read
    shared_preload_libraries): then an extension an administrator created is used as it is."""
    if mode == "off":
        return
    try:
        if await conn.fetchval("SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'"):
            return
        available = await conn.fetchval(
            "SELECT count(*) FROM pg_available_extensions WHERE name = 'timescaledb'"
        )
        if not available:
            return
        preloaded = await conn.fetchval("SELECT current_setting('shared_preload_libraries', true)")
        if "timescaledb" not in (preloaded or ""):
            log.warning("TimescaleDB is installed but not preloaded; using plain PostgreSQL tables")
            return
        await conn.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
    except asyncpg.PostgresError as exc:  # e.g. no privilege to look or to create extensions
        log.warning("could not enable TimescaleDB (%s); using plain PostgreSQL tables", exc)


async def detect_storage(conn: asyncpg.Connection) -> StorageMode:
    pg_version = await conn.fetchval("SHOW server_version")
    ts_version = await conn.fetchval(
        "SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'"
    )
    license_ = None
    if ts_version:
        license_ = await conn.fetchval("SELECT current_setting('timescaledb.license', true)")
    return StorageMode(
        timescaledb=ts_version is not None,
        timescaledb_version=ts_version,
        license=license_,
        postgres_version=pg_version,
    )


async def migrate(dsn: str, timescaledb: str = "auto") -> list[int]:
    """Apply pending migrations; return the versions applied now."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_ID)
        try:
            await enable_timescaledb(conn, timescaledb)
            await conn.execute(
                """CREATE TABLE IF NOT EXISTS schema_migrations (
                       version int PRIMARY KEY,
                       name text NOT NULL,
                       applied_at timestamptz NOT NULL DEFAULT now())"""
            )
            done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
            applied = []
            for version, name, path in migration_files():
                if version in done:
                    continue
                async with conn.transaction():
                    await conn.execute(path.read_text())
                    await conn.execute(
                        "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                        version, name,
                    )
                log.info("applied migration %04d_%s", version, name)
                applied.append(version)
            return applied
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_ID)
    finally:
        await conn.close()


async def migration_status(conn: asyncpg.Connection) -> dict[str, object]:
    done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
    known = [v for v, _, _ in migration_files()]
    return {"applied": sorted(done), "pending": [v for v in known if v not in done]}
