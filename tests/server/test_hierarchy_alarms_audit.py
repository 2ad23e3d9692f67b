"""Hierarchy, agent key scopes, the alarm lifecycle with causes and Pareto, and the audit trail."""

from __future__ import annotations

import asyncpg
import httpx
import pytest

from tests.fixtures.server import LiveServer, create_key
from tests.server.helpers import batch_headers, build_plant, samples

CALM = [10.0, 10.5, 9.5, 10.2, 9.8, 10.1, 9.9, 10.3, 9.7, 10.0]


@pytest.fixture(scope="module")
def plant(live_server: LiveServer) -> LiveServer:
    with live_server.client("engineer") as c:
        build_plant(c, "plant1", ["lineA", "lineB"], ["bore"])
    return live_server


def test_hierarchy_tree_and_bad_nodes(plant: LiveServer) -> None:
    with plant.client("operator") as c:
        tree = c.get("/hierarchy").json()
    assert tree[0]["key"] == "plant1"
    assert [ln["key"] for ln in tree[0]["lines"]] == ["lineA", "lineB"]
    assert tree[0]["lines"][0]["stations"][0]["characteristics"] == ["lineA-bore"]
    with plant.client("engineer") as c:
        r = c.post("/lines", json={"key": "x", "name": "x"})
        assert r.status_code == 422 and "parent: Field required" in r.json()["detail"]
        r = c.post("/stations", json={"key": "y", "name": "y", "parent": "nope"})
        assert r.status_code == 404 and "nope" in r.json()["detail"]
        assert c.post("/sites", json={"key": "plant1", "name": "again"}).status_code == 409
        r = c.post("/characteristics", json={"key": "z", "name": "z", "station": "nope"})
        assert r.status_code == 404
        r = c.post("/sites", json={"key": "bad key!", "name": "x"})
        assert r.status_code == 422


def test_agent_key_scoped_to_a_line_cannot_write_another(plant: LiveServer) -> None:
    key_a = create_key(plant.dsn, "agent", "line-a-agent", scope="lineA")
    url = f"{plant.url}/api/v1/ingest"
    headers = batch_headers({"Authorization": f"Bearer {key_a}"})
    r = httpx.post(url, json={"samples": samples("lineA-bore", CALM)}, headers=headers)
    assert r.status_code == 200
    batch = samples("lineA-bore", [10.0], start=20) + samples("lineB-bore", [10.0])
    r = httpx.post(url, json={"samples": batch}, headers=batch_headers(headers))
    assert r.status_code == 403
    assert "samples[1]" in r.json()["detail"] and "lineA" in r.json()["detail"]
    with plant.client("operator") as c:
        assert c.get("/characteristics/lineB-bore/chart").json()["points"] == []
        # nothing of the rejected batch was written, not even its in-scope sample
        assert len(c.get("/characteristics/lineA-bore/chart").json()["points"]) == 10


def test_alarm_lifecycle_causes_pareto(plant: LiveServer) -> None:
    r = httpx.post(f"{plant.url}/api/v1/ingest",
                   json={"samples": samples("lineB-bore", [*CALM, 20.0, 10.0, 10.0, 30.0],
                                            start=100)},
                   headers=batch_headers(plant.headers("agent")))
    assert r.status_code == 200
    with plant.client("operator") as c:
        alarms = c.get("/alarms", params={"line": "lineB", "rule": "we1"}).json()
        assert len(alarms) == 2 and all(a["state"] == "open" for a in alarms)
        causes = {x["key"] for x in c.get("/alarm-causes").json()}
        assert "tool_wear" in causes
        r = c.post(f"/alarms/{alarms[0]['id']}/acknowledge", json={"cause": "made_up"})
        assert r.status_code == 400 and "unknown cause" in r.json()["detail"]
        for a in alarms:
            r = c.post(f"/alarms/{a['id']}/acknowledge",
                       json={"cause": "tool_wear", "corrective_action": "changed insert"})
            assert r.status_code == 200 and r.json()["state"] == "acknowledged"
        again = c.post(f"/alarms/{alarms[0]['id']}/acknowledge", json={"cause": "tool_wear"})
        assert again.status_code == 409
        assert c.post("/alarms/999999/acknowledge", json={"cause": "tool_wear"}).status_code == 404
        closed = c.post(f"/alarms/{alarms[0]['id']}/close", json={"note": "verified"})
        assert closed.json()["state"] == "closed" and closed.json()["closed_by"].startswith("key:")
        assert c.post(f"/alarms/{alarms[0]['id']}/close", json={}).status_code == 409
        pareto = c.get("/alarms/pareto", params={"line": "lineB"}).json()
        assert pareto == [{"cause": "tool_wear", "label": "Tool wear", "count": 2,
                           "cumulative_percent": 100.0}]
        assert c.get("/alarms/pareto", params={"line": "lineA"}).json() == []
        # operators cannot extend the cause list; engineers can
        coolant = {"key": "coolant", "label": "Coolant"}
        assert c.post("/alarm-causes", json=coolant).status_code == 403
    with plant.client("engineer") as c:
        assert c.post("/alarm-causes", json={"key": "coolant", "label": "Coolant",
                                             "category": "material"}).status_code == 201


async def test_audit_trail_records_changes_and_is_append_only(plant: LiveServer) -> None:
    with plant.client("engineer") as c:
        c.patch("/characteristics/lineA-bore", json={"usl": 13.0, "lsl": 7.0})
        trail = c.get("/audit", params={"subject": "lineA-bore"}).json()
        actions = [e["action"] for e in trail]
        assert actions[:3] == ["characteristic.update", "limits.activate", "characteristic.create"]
        assert trail[0]["details"]["after"] == {"usl": 13.0, "lsl": 7.0}
        r = c.patch("/characteristics/lineA-bore", json={"lsl": 20.0})
        assert r.status_code == 400 and "below usl" in r.json()["detail"]
    with plant.client("operator") as c:
        assert c.get("/audit").status_code == 403
    conn = await asyncpg.connect(plant.dsn)
    try:
        for sql in ("UPDATE audit_log SET actor = 'forged'", "DELETE FROM audit_log",
                    "TRUNCATE audit_log"):
            with pytest.raises(asyncpg.RaiseError, match="append-only"):
                await conn.execute(sql)
    finally:
        await conn.close()
