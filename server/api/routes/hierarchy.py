"""The plant hierarchy: sites, lines, stations, and the tree the overview shows."""

from __future__ import annotations

import asyncpg
from fastapi import APIRouter

from server.api.deps import EngineerKey, OperatorKey, Pool
from server.exceptions import Conflict, NotFound
from server.models import ChildNodeCreate, NodeCreate
from server.repository import audit as audit_repo
from server.repository import hierarchy as hierarchy_repo

router = APIRouter(tags=["hierarchy"])


async def _create(
    pool: asyncpg.Pool, table: str, body: NodeCreate, actor: str
) -> dict[str, str | None]:
    parent = getattr(body, "parent", None)
    async with pool.acquire() as conn, conn.transaction():
        try:
            row = await hierarchy_repo.create(conn, table, body.key, body.name, parent)
        except LookupError as exc:
            raise NotFound(f"no parent {parent!r} for {table[:-1]} {body.key!r}") from exc
        if row is None:
            raise Conflict(f"{table[:-1]} {body.key!r} exists already")
        await audit_repo.record(conn, actor, f"{table[:-1]}.create", body.key, body.model_dump())
    return {"key": row["key"], "name": row["name"], "parent": parent}


@router.post("/sites", status_code=201)
async def create_site(body: NodeCreate, pool: Pool, principal: EngineerKey) -> dict:
    return await _create(pool, "sites", body, principal.actor)


@router.post("/lines", status_code=201)
async def create_line(body: ChildNodeCreate, pool: Pool, principal: EngineerKey) -> dict:
    return await _create(pool, "lines", body, principal.actor)


@router.post("/stations", status_code=201)
async def create_station(body: ChildNodeCreate, pool: Pool, principal: EngineerKey) -> dict:
    return await _create(pool, "stations", body, principal.actor)


@router.get("/hierarchy")
async def hierarchy(pool: Pool, principal: OperatorKey) -> list[dict]:
    """Sites with their lines, stations and characteristic keys, nested."""
    async with pool.acquire() as conn:
        rows = await hierarchy_repo.tree(conn)
    sites: dict[str, dict] = {}
    for r in rows:
        site = sites.setdefault(r["site"], {"key": r["site"], "name": r["site_name"], "lines": {}})
        if r["line"] is None:
            continue
        line = site["lines"].setdefault(
            r["line"], {"key": r["line"], "name": r["line_name"], "stations": {}}
        )
        if r["station"] is None:
            continue
        station = line["stations"].setdefault(
            r["station"], {"key": r["station"], "name": r["station_name"], "characteristics": []}
        )
        if r["characteristic"]:
            station["characteristics"].append(r["characteristic"])
    return [
        {**s, "lines": [{**ln, "stations": list(ln["stations"].values())}
                        for ln in s["lines"].values()]}
        for s in sites.values()
    ]
