"""`spc server`, `spc db migrate` and `spc keys create|list|revoke`."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

import asyncpg

from server.core import db
from server.core import logging as log_setup
from server.core.config import Settings, SettingsError
from server.repository import keys as keys_repo
from server.security import ROLES, generate_key


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spc", description="shopfloor-spc server commands")
    sub = parser.add_subparsers(dest="command", required=True)

    server = sub.add_parser("server", help="run the SPC server (settings from SPC_* variables)")
    server.add_argument("--host", help="listen address (SPC_HOST, default 127.0.0.1)")
    server.add_argument("--port", type=int, help="listen port (SPC_PORT, default 8000)")
    server.add_argument("--database-url", help="PostgreSQL DSN (DATABASE_URL)")
    server.add_argument("--tls-certfile", help="serve HTTPS with this certificate (PEM)")
    server.add_argument("--tls-keyfile", help="private key of --tls-certfile (PEM)")

    dbp = sub.add_parser("db", help="database tasks")
    dbsub = dbp.add_subparsers(dest="db_command", required=True)
    mig = dbsub.add_parser("migrate", help="apply pending schema migrations")
    mig.add_argument("--database-url", help="PostgreSQL DSN (DATABASE_URL)")
    maint = dbsub.add_parser("maintain", help="roll up closed hours and apply retention, once")
    maint.add_argument("--database-url", help="PostgreSQL DSN (DATABASE_URL)")
    maint.add_argument("--retention-days", type=float,
                       help="remove raw samples older than this (SPC_RETENTION_DAYS; 0 = keep)")

    keys = sub.add_parser("keys", help="API keys")
    ksub = keys.add_subparsers(dest="keys_command", required=True)
    create = ksub.add_parser("create", help="create a key and print it once")
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument("--name", default="", help="who or what uses the key")
    create.add_argument("--scope", help="limit an agent key to one line key")
    create.add_argument("--database-url", help="PostgreSQL DSN (DATABASE_URL)")
    lst = ksub.add_parser("list", help="list active keys (prefixes only)")
    lst.add_argument("--database-url", help="PostgreSQL DSN (DATABASE_URL)")
    rev = ksub.add_parser("revoke", help="revoke a key by id")
    rev.add_argument("id", type=int)
    rev.add_argument("--database-url", help="PostgreSQL DSN (DATABASE_URL)")
    return parser


async def create_key(
    dsn: str, role: str, name: str, scope: str | None, timescaledb: str = "auto"
) -> str:
    await db.migrate(dsn, timescaledb)
    plain, prefix, key_hash = generate_key()
    conn = await asyncpg.connect(dsn)
    try:
        await keys_repo.create(conn, prefix, key_hash, role, name, scope)
    finally:
        await conn.close()
    return plain


async def list_keys(dsn: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await keys_repo.list_active(conn)
    finally:
        await conn.close()


async def revoke_key(dsn: str, key_id: int) -> bool:
    conn = await asyncpg.connect(dsn)
    try:
        return await keys_repo.revoke(conn, key_id)
    finally:
        await conn.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env(
            database_url=getattr(args, "database_url", None),
            host=getattr(args, "host", None), port=getattr(args, "port", None),
            tls_certfile=getattr(args, "tls_certfile", None),
            tls_keyfile=getattr(args, "tls_keyfile", None),
        )
    except SettingsError as exc:
        print(f"spc {args.command}: {exc}", file=sys.stderr)
        return 2
    log_setup.configure(settings.log_level, settings.log_format)
    try:
        if args.command == "server":
            return run_server(settings)
        if args.command == "db" and args.db_command == "maintain":
            days = settings.retention_days if args.retention_days is None else args.retention_days
            if days < 0:
                print("spc db maintain: --retention-days must be >= 0", file=sys.stderr)
                return 2
            report = asyncio.run(maintain(settings, days))
            print(f"rolled up until {report.rolled_up_until} ({report.rollup_rows} rows); "
                  f"retention cutoff {report.retention_cutoff}: {report.chunks_dropped} chunks "
                  f"dropped, {report.rows_deleted} rows deleted")
            return 0
        if args.command == "db":
            applied = asyncio.run(db.migrate(settings.database_url, settings.timescaledb))
            print(f"applied migrations: {applied or 'none (up to date)'}")
            return 0
        if args.keys_command == "create":
            plain = asyncio.run(create_key(settings.database_url, args.role, args.name, args.scope,
                                           settings.timescaledb))
            print(plain)
            return 0
        if args.keys_command == "list":
            for r in asyncio.run(list_keys(settings.database_url)):
                print(f"{r['id']:>4}  spc_{r['prefix']}_…  {r['role']:<9} {r['scope'] or '-':<12} "
                      f"{r['name']}")
            return 0
        if not asyncio.run(revoke_key(settings.database_url, args.id)):
            print(f"spc keys revoke: no active key {args.id}", file=sys.stderr)
            return 1
        return 0
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        print(f"spc {args.command}: cannot use the database at {settings.database_url}: {exc}",
              file=sys.stderr)
        return 1


async def maintain(settings: Settings, retention_days: float):
    from server.services.maintenance import run_once

    await db.migrate(settings.database_url, settings.timescaledb)
    pool = await db.create_pool(settings.database_url, min_size=1, max_size=2)
    try:
        async with pool.acquire() as conn:
            storage = await db.detect_storage(conn)
        return await run_once(pool, storage, retention_days)
    finally:
        await pool.close()


def run_server(settings: Settings) -> int:
    import uvicorn

    from server.main import create_app

    if bool(settings.tls_certfile) != bool(settings.tls_keyfile):
        print("spc server: --tls-certfile and --tls-keyfile go together", file=sys.stderr)
        return 2
    uvicorn.run(
        create_app(settings), host=settings.host, port=settings.port,
        log_level=settings.log_level, log_config=None, ssl_certfile=settings.tls_certfile,
        ssl_keyfile=settings.tls_keyfile, access_log=False,
    )
    return 0
