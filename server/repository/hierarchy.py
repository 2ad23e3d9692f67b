"""The plant hierarchy: site → line → station (characteristics hang off stations)."""

from __future__ import annotations

import asyncpg

# child table -> (parent table, parent column)
PARENTS = {"lines": ("sites", "site_id"), "stations": ("lines", "line_id")}


async def create(
    conn: asyncpg.Connection, table: str, key: str, name: str, parent_key: str | None
) -> asyncpg.Record | None:
    """Insert a node; None if the key exists. Raises LookupError for an unknown parent."""
    if table == "sites":
        return await conn.fetchrow(
            "INSERT INTO sites (key, name) VALUES ($1, $2) ON CONFLICT DO NOTHING "
            "RETURNING id, key, name", key, name,
        )
    parent_table, parent_col = PARENTS[table]
    parent_id = await conn.fetchval(f"SELECT id FROM {parent_table} WHERE key = $1", parent_key)
    if parent_id is None:
        raise LookupError(parent_key)
    return await conn.fetchrow(
        f"INSERT INTO {table} ({parent_col}, key, name) VALUES ($1, $2, $3) "
        "ON CONFLICT DO NOTHING RETURNING id, key, name",
        parent_id, key, name,
    )


async def station_id(conn: asyncpg.Connection, key: str) -> int | None:
    return await conn.fetchval("SELECT id FROM stations WHERE key = $1", key)


async def tree(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    """One row per characteristic (or empty node), with its site, line and station keys."""
    return await conn.fetch(
        """SELECT s.key AS site, s.name AS site_name, l.key AS line, l.name AS line_name,
                  st.key AS station, st.name AS station_name, c.key AS characteristic
           FROM sites s
           LEFT JOIN lines l ON l.site_id = s.id
           LEFT JOIN stations st ON st.line_id = l.id
           LEFT JOIN characteristics c ON c.station_id = st.id
           ORDER BY s.key, l.key, st.key, c.key"""
    )


async def lines_of(
    conn: asyncpg.Connection, characteristic_ids: list[int]
) -> dict[int, str | None]:
    """The line key of each characteristic (None when it hangs off no station)."""
    rows = await conn.fetch(
        """SELECT c.id, l.key AS line FROM characteristics c
           LEFT JOIN stations st ON st.id = c.station_id
           LEFT JOIN lines l ON l.id = st.line_id
           WHERE c.id = ANY($1)""",
        characteristic_ids,
    )
    return {r["id"]: r["line"] for r in rows}
