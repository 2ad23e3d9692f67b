"""The maintenance job: hourly rollups, then retention of raw data.

Rollups run first and retention never removes an hour that is not rolled up yet, so the
summaries survive the raw data. With TimescaleDB, retention drops whole chunks (`drop_chunks`);
on plain PostgreSQL it deletes in bounded batches. (With TimescaleDB's community edition its own
retention, compression and continuous-aggregate policies could do this work; the Apache edition
and plain PostgreSQL have no such policies, so the server does it for every edition alike.)
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

from server.core.db import StorageMode
from server.repository import maintenance as maintenance_repo
from server.services.periodic import Periodic

log = logging.getLogger("spc.maintenance")
DELETE_BATCH = 50_000


@dataclass
class MaintenanceReport:
    rolled_up_until: datetime | None
    rollup_rows: int
    retention_cutoff: datetime | None
    chunks_dropped: int
    rows_deleted: int


def floor_hour(t: datetime) -> datetime:
    return t.replace(minute=0, second=0, microsecond=0)


async def run_once(
    pool: asyncpg.Pool, storage: StorageMode, retention_days: float,
    now: datetime | None = None,
) -> MaintenanceReport:
    now = now or datetime.now(UTC)
    last_complete_hour = floor_hour(now)
    rows = 0
    async with pool.acquire() as conn:
        start = await maintenance_repo.rollup_done_until(conn)
        if start is None:
            first = await maintenance_repo.first_measurement(conn)
            start = floor_hour(first) if first else None
        # A late sample can land in an hour already rolled up: redo the last day every run.
        if start is not None:
            start = min(start, last_complete_hour - timedelta(days=1))
            if start < last_complete_hour:
                async with conn.transaction():
                    rows = await maintenance_repo.rollup_hours(conn, start, last_complete_hour)
        done_until = await maintenance_repo.rollup_done_until(conn)
        chunks = deleted = 0
        cutoff_at = None
        if retention_days > 0:
            cutoff_at = now - timedelta(days=retention_days)
            if done_until is not None:
                cutoff_at = min(cutoff_at, done_until)
            if storage.timescaledb:
                chunks = await maintenance_repo.drop_chunks_older_than(conn, cutoff_at)
            else:
                deleted = await maintenance_repo.delete_older_than(conn, cutoff_at, DELETE_BATCH)
            await maintenance_repo.delete_subgroups_older_than(conn, cutoff_at)
    report = MaintenanceReport(done_until, rows, cutoff_at, chunks, deleted)
    log.info("maintenance: %s", report)
    return report


def maintenance_job(
    pool: asyncpg.Pool, storage: StorageMode, *, retention_days: float, interval_s: float
) -> Periodic:
    async def round_() -> None:
        await run_once(pool, storage, retention_days)

    return Periodic("maintenance", round_, interval_s, log)
