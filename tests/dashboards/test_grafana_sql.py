"""Every Grafana panel's SQL runs against the real schema and agrees with the server.

The dashboards in dashboards/grafana/dashboards/ query the database directly. Here a live server
(real PostgreSQL + TimescaleDB, real migrations) is fed through its API, each panel's rawSql is
expanded the way Grafana's PostgreSQL datasource expands it (with `timescaledb: true`), run with
asyncpg, and compared with what the server's own API reports for the same data: the chart API's
per-point statistic and limits, its violations, the alarm list and the Pareto.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.fixtures.server import LiveServer
from tests.server.helpers import T0, batch_headers, samples

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "dashboards" / "grafana" / "dashboards").glob("*.json"))
FROM = T0 - timedelta(hours=1)
TO = T0 + timedelta(hours=1)
KNOWN = "2026-01-01T00:00:00Z"

# --- Grafana's macro expansion (PostgreSQL datasource, timescaledb: true) ------------------------
# Only the macros the dashboards use; anything else left in the SQL fails the test.


def _grafana_ts(t: datetime) -> str:
    return "'" + t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") + "'"


def _interval_seconds(text: str) -> int:
    m = re.fullmatch(r"'?(\d+)(ms|s|m|h|d|w)'?", text.strip())
    assert m, f"unsupported interval {text!r}"
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[m.group(2)]
    return max(1, int(int(m.group(1)) * scale))


def _macro_args(sql: str, start: int) -> tuple[list[str], int]:
    """Arguments of the macro call whose '(' is at `start` (nested parentheses allowed)."""
    depth, args, cur = 0, [], ""
    for i in range(start, len(sql)):
        ch = sql[i]
        if ch == "(":
            depth += 1
            if depth == 1:
                continue
        elif ch == ")":
            depth -= 1
            if depth == 0:
                args.append(cur.strip())
                return [a for a in args if a], i + 1
        elif ch == "," and depth == 1:
            args.append(cur.strip())
            cur = ""
            continue
        cur += ch
    raise AssertionError("unbalanced macro call")


def expand(sql: str, variables: dict[str, str], t_from: datetime = FROM,
           t_to: datetime = TO, interval: str = "1m") -> str:
    """Grafana first interpolates template variables, then expands the $__ macros."""
    sql = sql.replace("$__interval", interval)
    for name, value in variables.items():
        sql = re.sub(rf"\$(?:{name}\b|\{{{name}\}})", value, sql)
    out, pos = [], 0
    for m in re.finditer(r"\$__(\w+)\(", sql):
        if m.start() < pos:
            continue
        args, end = _macro_args(sql, m.end() - 1)
        name = m.group(1)
        if name == "timeFilter":
            (col,) = args
            text = f"{col} BETWEEN {_grafana_ts(t_from)} AND {_grafana_ts(t_to)}"
        elif name == "timeFrom":
            text = _grafana_ts(t_from)
        elif name == "timeTo":
            text = _grafana_ts(t_to)
        elif name == "timeGroupAlias":
            col, step = args[0], args[1]
            text = f"time_bucket('{_interval_seconds(step)}s', {col}) AS \"time\""
        else:
            raise AssertionError(f"macro $__{name} used but not emulated by this test")
        out.append(sql[pos:m.start()] + text)
        pos = end
    sql = "".join(out) + sql[pos:]
    leftover = re.search(r"\$\w+", sql)
    assert leftover is None, f"unexpanded Grafana variable {leftover.group(0)} in {sql}"
    return sql


def test_expand_is_what_grafana_does() -> None:
    sql = expand("SELECT $__timeGroupAlias(ts, $__interval), 1 WHERE $__timeFilter(m.ts) "
                 "AND k = '$characteristic' AND t < $__timeTo()", {"characteristic": "bore"},
                 interval="5m")
    assert sql == ("SELECT time_bucket('300s', ts) AS \"time\", 1 WHERE m.ts BETWEEN "
                   "'2026-01-05T07:00:00Z' AND '2026-01-05T09:00:00Z' AND k = 'bore' "
                   "AND t < '2026-01-05T09:00:00Z'")
    with pytest.raises(AssertionError, match="not emulated"):
        expand("SELECT $__unixEpochFilter(ts)", {})
    with pytest.raises(AssertionError, match="unexpanded"):
        expand("SELECT '$other'", {})


# --- the dashboards -------------------------------------------------------------------------


def _queries(dash: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(title, format, rawSql) of every panel target, annotation and variable."""
    found = []
    for panel in dash["panels"]:
        for t in panel.get("targets", []):
            found.append((panel["title"], t["format"], t["rawSql"]))
    for ann in dash.get("annotations", {}).get("list", []):
        if "target" in ann:
            found.append((f"annotation {ann['name']}", "annotation", ann["target"]["rawSql"]))
    for var in dash.get("templating", {}).get("list", []):
        if var["type"] == "query":
            found.append((f"variable {var['name']}", "variable", var["query"]))
    return found


def load(name: str) -> dict[str, Any]:
    return json.loads((ROOT / "dashboards" / "grafana" / "dashboards" / name).read_text())


def query(dash: dict[str, Any], title: str) -> str:
    (sql,) = [s for t, _, s in _queries(dash) if t == title]
    return sql


def test_dashboards_are_wired_to_the_provisioned_datasource() -> None:
    ds = (ROOT / "dashboards/grafana/provisioning/datasources/timescaledb.yaml").read_text()
    assert "uid: spc-timescaledb" in ds and "timescaledb: true" in ds
    assert {p.name for p in DASHBOARDS} == {"spc-control-chart.json", "spc-alarms.json"}
    uids = set()
    for path in DASHBOARDS:
        dash = json.loads(path.read_text())
        uids.add(dash["uid"])
        assert _queries(dash)
        for panel in dash["panels"]:
            assert panel["datasource"]["uid"] == "spc-timescaledb", panel["title"]
            for t in panel["targets"]:
                assert t["datasource"]["uid"] == "spc-timescaledb" and t["rawQuery"]
                assert t["format"] in ("table", "time_series")
        ids = [p["id"] for p in dash["panels"]]
        assert len(ids) == len(set(ids)), path.name
        cells: set[tuple[int, int]] = set()
        for panel in dash["panels"]:  # on Grafana's 24-column grid, no two panels overlap
            g = panel["gridPos"]
            assert g["x"] + g["w"] <= 24, panel["title"]
            mine = {(x, y) for x in range(g["x"], g["x"] + g["w"])
                    for y in range(g["y"], g["y"] + g["h"])}
            assert not mine & cells, f"{path.name}: {panel['title']} overlaps another panel"
            cells |= mine
    assert len(uids) == len(DASHBOARDS)


# --- data through the real API --------------------------------------------------------------

KINDS = {  # key: (chart_type, center, sigma, extra, values, lot sizes)
    "g_imr": ("imr", 10.0, 1.0, {}, [10.2, 9.5, 10.1, 14.0, 10.0, 9.8, 10.3, 9.9, 10.1, 9.7], None),
    "g_xbar": ("xbar-r", 10.0, 1.0, {"subgroup_size": 3},
               [10.0, 11.0, 9.0, 10.5, 9.5, 10.0, 13.0, 12.5, 13.5, 10.0], None),
    # time-window subgroups with a bad sample: subgroups of different sizes (sigma / sqrt(n_i))
    "g_xbar_t": ("xbar-s", 10.0, 1.0, {"subgroup_size": 3, "subgrouping": "time",
                                       "subgroup_window_s": 3.0},
                 [10.0, 11.0, 9.0, 12.5, None, 12.0, 10.0, 10.5, 9.5, 10.0, 14.0], None),
    "g_p": ("p", 0.1, 1.0, {}, [5, 10, 30, 2], [50, 100, 100, 200]),
    "g_np": ("np", 0.1, 1.0, {}, [5, 10, 30, 2], [50, 100, 100, 200]),
    "g_c": ("c", 4.0, 1.0, {}, [3.0, 5.0, 11.0, 4.0], None),
    "g_u": ("u", 0.5, 1.0, {}, [10, 40, 5], [20, 40, 10]),
    "g_ewma": ("ewma", 0.0, 1.0, {"options": {"lam": 0.2, "L": 3.0}},
               [0.5, -0.2, 1.0, 2.0, 2.5, 3.0, 2.8], None),
}


def _post(server: LiveServer, batch: list[dict]) -> None:
    r = httpx.post(f"{server.url}/api/v1/ingest", json={"samples": batch},
                   headers=batch_headers(server.headers("agent")), timeout=30)
    assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
def fed(live_server: LiveServer) -> LiveServer:
    with live_server.client("engineer") as c:
        for key, (kind, center, sigma, extra, _, _) in KINDS.items():
            r = c.post("/characteristics", json={"key": key, "name": f"{kind} chart",
                                                 "chart_type": kind, "baseline_points": 0,
                                                 **extra})
            assert r.status_code == 201, r.text
            r = c.post(f"/characteristics/{key}/limits", json={
                "center": center, "sigma": sigma, "reason": "known", "effective_from": KNOWN})
            assert r.status_code == 201, r.text
        # a second I-MR limits version in force from the 6th sample on: a stair step
        r = c.post("/characteristics/g_imr/limits", json={
            "center": 10.5, "sigma": 0.5, "reason": "re-fit after tool change",
            "effective_from": (T0 + timedelta(seconds=5)).isoformat()})
        assert r.status_code == 201, r.text
    for key, (_, _, _, _, values, sizes) in KINDS.items():
        batch = samples(key, values)
        for s, n in zip(batch, sizes or [], strict=False):
            s["size"] = n
        _post(live_server, batch)
    # a bad sample is stored but never plotted
    _post(live_server, samples("g_imr", [None], start=20))
    with live_server.client("operator") as c:
        alarms = c.get("/alarms", params={"limit": 1000}).json()
        assert len(alarms) >= 4, alarms
        causes = ["tool_wear", "tool_wear", "gauge_error"]
        for alarm, cause in zip(alarms, causes, strict=False):
            r = c.post(f"/alarms/{alarm['id']}/acknowledge",
                       json={"cause": cause, "corrective_action": "checked"})
            assert r.status_code == 200, r.text
    return live_server


def _chart(server: LiveServer, key: str) -> list[dict[str, Any]]:
    with server.client("operator") as c:
        r = c.get(f"/characteristics/{key}/chart", params={"limit": 1000})
        assert r.status_code == 200, r.text
        return r.json()["points"]


async def _fetch(server: LiveServer, sql: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(server.dsn)
    try:
        return await conn.fetch(sql)
    finally:
        await conn.close()


EXPECTED_COLUMNS = {
    "Control chart: $characteristic": ["time", "value", "CL", "UCL", "LCL", "violation"],
    "Violations": ["time", "rule", "alarm_id", "alarm_state", "cause"],
    "Alarms": ["id", "opened", "last point", "characteristic / subject", "kind", "rule", "state",
               "severity", "points", "cause", "corrective action", "acknowledged by",
               "acknowledged", "closed", "detail"],
    "Limits versions": ["version", "effective_from", "chart_type", "center", "sigma", "ucl", "lcl",
                        "created_by", "created_at", "reason"],
    "annotation Violations": ["time", "text", "tags"],
    "variable characteristic": ["__value", "__text"],
    "Alarms not closed": ["open", "acknowledged"],
    "Alarms opened": ["time", "alarms opened"],
    "Alarm Pareto by cause": ["cause", "alarms", "cumulative %"],
}


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
async def test_every_query_runs_and_returns_its_columns(fed: LiveServer, path: Path) -> None:
    dash = json.loads(path.read_text())
    for title, fmt, raw in _queries(dash):
        sql = expand(raw, {"characteristic": "g_imr"})
        conn = await asyncpg.connect(fed.dsn)
        try:
            stmt = await conn.prepare(sql)
            columns = [a.name for a in stmt.get_attributes()]
            rows = await stmt.fetch()
        finally:
            await conn.close()
        assert columns == EXPECTED_COLUMNS[title], (path.name, title)
        assert rows, f"{path.name}: {title} returned no rows"
        if fmt == "time_series":  # Grafana wants a time column in ascending order
            times = [r["time"] for r in rows]
            assert times == sorted(times) and all(isinstance(t, datetime) for t in times)


def _num(v: Any) -> float | None:
    return None if v is None else float(v)


@pytest.mark.parametrize("key", list(KINDS))
async def test_control_chart_matches_the_servers_chart(fed: LiveServer, key: str) -> None:
    kind = KINDS[key][0]
    sql = expand(query(load("spc-control-chart.json"), "Control chart: $characteristic"),
                 {"characteristic": key})
    rows = await _fetch(fed, sql)
    points = _chart(fed, key)
    assert [r["time"] for r in rows] == [datetime.fromisoformat(p["ts"]) for p in points]
    flagged = [r["violation"] is not None for r in rows]
    assert flagged == [bool(p["violations"]) for p in points]
    if kind == "ewma":
        # raw values and the centre line; EWMA limits belong to the EWMA statistic
        assert [r["value"] for r in rows] == pytest.approx(KINDS[key][4])
        assert all(r["CL"] == 0.0 and r["UCL"] is None and r["LCL"] is None for r in rows)
        assert any(flagged)
        return
    for r, p in zip(rows, points, strict=True):
        if p["quality"] == "bad":  # a gap in the line; the limits in force stay drawn
            assert r["value"] is None and r["violation"] is None
            continue
        assert r["value"] == pytest.approx(p["statistic"], abs=1e-12)
        assert r["CL"] == pytest.approx(p["center"], abs=1e-12)
        assert _num(r["UCL"]) == pytest.approx(p["ucl"], abs=1e-9), (key, p)
        assert _num(r["LCL"]) == pytest.approx(p["lcl"], abs=1e-9), (key, p)
        if r["violation"] is not None:
            assert r["violation"] == r["value"]
    assert any(flagged), f"{key}: the data was meant to violate a rule"


async def test_imr_limits_step_at_the_new_version(fed: LiveServer) -> None:
    sql = expand(query(load("spc-control-chart.json"), "Control chart: $characteristic"),
                 {"characteristic": "g_imr"})
    rows = await _fetch(fed, sql)
    assert len(rows) == 11 and rows[10]["value"] is None  # the bad sample: a gap
    assert [r["CL"] for r in rows] == [10.0] * 5 + [10.5] * 6
    assert rows[0]["UCL"] == pytest.approx(13.0) and rows[5]["UCL"] == pytest.approx(12.0)
    assert rows[3]["violation"] == 14.0


async def test_xbar_plots_subgroup_means_with_sigma_over_root_n(fed: LiveServer) -> None:
    sql = expand(query(load("spc-control-chart.json"), "Control chart: $characteristic"),
                 {"characteristic": "g_xbar"})
    rows = await _fetch(fed, sql)
    assert [r["value"] for r in rows] == pytest.approx([10.0, 10.0, 13.0])  # 10th waits
    assert rows[0]["UCL"] == pytest.approx(10 + 3 / math.sqrt(3))
    assert rows[2]["violation"] == pytest.approx(13.0)


async def test_time_range_limits_the_chart(fed: LiveServer) -> None:
    sql = expand(query(load("spc-control-chart.json"), "Control chart: $characteristic"),
                 {"characteristic": "g_imr"}, t_from=T0 + timedelta(seconds=2),
                 t_to=T0 + timedelta(seconds=4))
    rows = await _fetch(fed, sql)
    assert [r["time"] for r in rows] == [T0 + timedelta(seconds=s) for s in (2, 3, 4)]


async def test_violations_table_and_annotations_match_the_chart(fed: LiveServer) -> None:
    dash = load("spc-control-chart.json")
    for key in KINDS:
        expected = sorted((datetime.fromisoformat(p["ts"]), rule)
                          for p in _chart(fed, key) for rule in p["violations"])
        table = await _fetch(fed, expand(query(dash, "Violations"), {"characteristic": key}))
        assert sorted((r["time"], r["rule"]) for r in table) == expected, key
        notes = await _fetch(fed, expand(query(dash, "annotation Violations"),
                                         {"characteristic": key}))
        assert sorted((r["time"], r["tags"]) for r in notes) == expected, key
        assert all(r["text"].startswith(r["tags"] + " (alarm #") for r in notes)


async def test_alarm_tables_match_the_alarm_api(fed: LiveServer) -> None:
    with fed.client("operator") as c:
        api = {a["id"]: a for a in c.get("/alarms", params={"limit": 1000}).json()}
    rows = await _fetch(fed, expand(query(load("spc-alarms.json"), "Alarms"), {}))
    assert {r["id"] for r in rows} == set(api)
    for r in rows:
        a = api[r["id"]]
        assert (r["characteristic / subject"], r["rule"], r["state"]) == (
            a["characteristic"], a["rule"], a["state"])
    acknowledged = [r for r in rows if r["state"] == "acknowledged"]
    assert len(acknowledged) == 3
    assert sorted(r["cause"] for r in acknowledged) == [
        "Gauge or sensor error", "Tool wear", "Tool wear"]  # labels, not keys
    assert all(r["corrective action"] == "checked" for r in acknowledged)
    # the characteristic dashboard's alarm table shows that characteristic's alarms only
    mine = await _fetch(fed, expand(query(load("spc-control-chart.json"), "Alarms"),
                                    {"characteristic": "g_c"}))
    assert {r["id"] for r in mine} == {i for i, a in api.items() if a["characteristic"] == "g_c"}
    assert mine
    # a time range after every alarm: closed ones drop out, open ones stay
    later = await _fetch(fed, expand(query(load("spc-alarms.json"), "Alarms"), {},
                                     t_from=T0 + timedelta(days=1), t_to=T0 + timedelta(days=2)))
    assert {r["id"] for r in later} == {i for i, a in api.items() if a["state"] != "closed"}


async def test_pareto_matches_the_pareto_api(fed: LiveServer) -> None:
    with fed.client("operator") as c:
        api = c.get("/alarms/pareto", params={"since": FROM.isoformat(),
                                              "until": TO.isoformat()}).json()
    rows = await _fetch(fed, expand(query(load("spc-alarms.json"), "Alarm Pareto by cause"), {}))
    assert [(r["cause"], r["alarms"], float(r["cumulative %"])) for r in rows] == [
        (b["label"], b["count"], b["cumulative_percent"]) for b in api]
    assert [(r["cause"], r["alarms"]) for r in rows] == [("Tool wear", 2),
                                                         ("Gauge or sensor error", 1)]
    assert float(rows[-1]["cumulative %"]) == 100.0


async def test_alarms_opened_over_time_and_counts(fed: LiveServer) -> None:
    dash = load("spc-alarms.json")
    with fed.client("operator") as c:
        api = c.get("/alarms", params={"limit": 1000}).json()
    buckets = await _fetch(fed, expand(query(dash, "Alarms opened"), {}, interval="1h"))
    assert sum(r["alarms opened"] for r in buckets) == len(api)
    assert all(r["time"].minute == 0 and r["time"].second == 0 for r in buckets)
    (counts,) = await _fetch(fed, expand(query(dash, "Alarms not closed"), {}))
    assert counts["open"] == sum(a["state"] == "open" for a in api)
    assert counts["acknowledged"] == 3
    keys = await _fetch(fed, query(load("spc-control-chart.json"), "variable characteristic"))
    assert set(KINDS) <= {r["__value"] for r in keys}


async def test_time_subgroups_of_different_sizes(fed: LiveServer) -> None:
    sql = expand(query(load("spc-control-chart.json"), "Control chart: $characteristic"),
                 {"characteristic": "g_xbar_t"})
    rows = await _fetch(fed, sql)
    conn = await asyncpg.connect(fed.dsn)
    try:
        sizes = [r["n"] for r in await conn.fetch(
            "SELECT s.n FROM subgroups s JOIN characteristics c ON c.id = s.characteristic_id "
            "WHERE c.key = 'g_xbar_t' ORDER BY s.ts")]
    finally:
        await conn.close()
    assert len(rows) == len(sizes) >= 3 and len(set(sizes)) > 1, sizes
    for r, n in zip(rows, sizes, strict=True):
        assert r["UCL"] == pytest.approx(10.0 + 3 / math.sqrt(n))
