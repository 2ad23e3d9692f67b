"""Ingest's reads of what is stored before a batch are bounded in time (so that the planner can
leave out old chunks), and fall back to an unbounded read when the bound hides points the
rules need: a pattern spanning a stop of the line is still found."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg

from server.repository import limits as limits_repo
from server.repository import measurements as measurements_repo
from server.services import ingest as ingest_service

T0 = datetime(2026, 4, 1, tzinfo=UTC)


async def imr_characteristic(pool: asyncpg.Pool, key: str) -> int:
    async with pool.acquire() as conn:
        cid = await conn.fetchval(
            "INSERT INTO characteristics (key, name, rules) VALUES ($1, $1, 'we') RETURNING id",
            key)
        await limits_repo.add_version(
            conn, cid, center=10.0, sigma=1.0, ucl=13.0, lcl=7.0, mr_center=1.128,
            mr_ucl=3.686, effective_from=T0 - timedelta(days=30), created_by="test",
            reason="known")
    return cid


def points(key: str, start: datetime, values: list[float]) -> list[dict]:
    return [{"characteristic": key, "ts": start + timedelta(minutes=i), "value": v}
            for i, v in enumerate(values)]


async def alarms(pool: asyncpg.Pool, cid: int) -> list[tuple[str, datetime]]:
    rows = await pool.fetch(
        "SELECT rule, first_ts FROM alarms WHERE characteristic_id = $1 ORDER BY id", cid)
    return [(r["rule"], r["first_ts"]) for r in rows]


async def test_a_run_across_a_three_day_stop_is_found(migrated_pool: asyncpg.Pool) -> None:
    """Seven points above the center, the line stops for three days (beyond the read's
    look-back), then one more above: WE rule 4 (8 in a row on one side) fires at that point."""
    cid = await imr_characteristic(migrated_pool, "stopped")
    await ingest_service.ingest(migrated_pool, "a", points("stopped", T0, [10.5] * 7), None,
                                1000, 1e9)
    assert await alarms(migrated_pool, cid) == []
    resumed = T0 + timedelta(days=3)
    assert resumed - T0 > measurements_repo.LOOKBACK
    await ingest_service.ingest(migrated_pool, "a", points("stopped", resumed, [10.5]), None,
                                1000, 1e9)
    assert await alarms(migrated_pool, cid) == [("we4", resumed)]


async def test_windows_read_with_and_without_the_bound_agree(
    migrated_pool: asyncpg.Pool,
) -> None:
    """Whether the points before `since` lie within the look-back or not, the window is the
    same as reading the whole series would give."""
    cid = await imr_characteristic(migrated_pool, "sparse")
    stamps = [T0 - timedelta(days=d) for d in (9, 5, 2)] + \
        [T0 + timedelta(hours=h) for h in range(-20, 30, 2)]
    async with migrated_pool.acquire() as conn:
        await conn.copy_records_to_table(
            "measurements", columns=["characteristic_id", "ts", "value", "quality"],
            records=[(cid, t, float(i), 2 if i % 7 == 3 else 0) for i, t in enumerate(stamps)])
        everything = await conn.fetch(
            "SELECT ts, quality FROM measurements WHERE characteristic_id = $1 ORDER BY ts", cid)
        for since in (T0 - timedelta(days=3), T0, T0 + timedelta(hours=25)):
            for history in (0, 3, 20, None):
                got = await measurements_repo.stored_near(conn, [(cid, since, history, None)])
                before = [r["ts"] for r in everything if r["ts"] < since and r["quality"] < 2]
                after = [r["ts"] for r in everything if r["ts"] >= since]
                want = (before if history is None else before[max(0, len(before) - history):]
                        if history else []) + after
                assert [r["ts"] for r in got[cid]] == want, (since, history)
                good = await measurements_repo.evaluation_windows(conn, [(cid, since, history)])
                assert [r["ts"] for r in good[cid]] == [
                    t for t in want if t < since or t in
                    {r["ts"] for r in everything if r["quality"] < 2}]
