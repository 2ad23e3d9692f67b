"""Chart, alarm, capability and limits views in a real browser against a live server, and what
each role may see. Data goes in through the ingest API; effects are checked in the database."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime

import asyncpg
import pytest

from tests.dashboards.plant import build_history, build_plant, ingest
from tests.fixtures.browser import screenshot
from tests.fixtures.server import LiveServer
from tests.server.helpers import samples


@pytest.fixture(scope="module")
def plant(live_server: LiveServer) -> LiveServer:
    build_plant(live_server)
    build_history(live_server)
    return live_server


def open_ui(page, server: LiveServer, route: str, role: str = "operator") -> None:
    page.goto(f"{server.url}/ui/#key={server.keys[role]}")
    page.wait_for_selector("#connection[data-state=live]")
    page.wait_for_selector(".overview .tile")
    page.evaluate(f"location.hash = {route!r}")


def fetch_row(dsn: str, query: str, *args) -> asyncpg.Record:
    """One row from the database, read on a thread of its own: Playwright's sync API keeps an
    event loop in this one."""
    out: list = []

    async def run() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            out.append(await conn.fetchrow(query, *args))
        finally:
            await conn.close()

    t = threading.Thread(target=lambda: asyncio.run(run()))
    t.start()
    t.join(30)
    return out[0]


def test_chart_marks_violation_with_rule_in_words_and_specs_toggle(plant: LiveServer,
                                                                   page) -> None:
    open_ui(page, plant, "#/chart/bore")
    page.wait_for_selector("#chart-i canvas")
    assert page.get_attribute("#chart-i", "data-violations") == "0"
    ingest(plant, samples("bore", [13.6], t0=datetime.now(UTC)))
    page.wait_for_selector("#chart-i[data-violations='1']", timeout=2000)
    assert page.get_attribute("#violations td[data-rule]", "data-rule") == "we1"
    # the tooltip of the marked point says it in words
    x, y = page.evaluate("""() => {
        const u = document.querySelector('#chart-i').uplot;
        const i = u.data[5].findIndex((v) => v !== null);
        const r = u.over.getBoundingClientRect();
        return [r.left + u.valToPos(u.data[0][i], 'x'), r.top + u.valToPos(u.data[5][i], 'y')];
    }""")
    page.mouse.move(x - 2, y)  # the newest point sits on the plot's right edge
    page.wait_for_selector("#chart-i .chart-tip:not([hidden])")
    assert "1: 1 point beyond 3σ" in page.text_content("#chart-i .chart-tip")
    # spec limits on demand: drawn and inside the y range
    assert page.get_attribute("#chart-i", "data-specs") == "hidden"
    page.check("#show-specs")
    page.wait_for_selector("#chart-i[data-specs=shown]")
    lo, hi = page.evaluate("() => { const s = document.querySelector('#chart-i').uplot.scales.y;"
                           " return [s.min, s.max]; }")
    assert lo <= 6.0 and hi >= 14.0
    assert page.is_visible("#chart-mr canvas")  # the moving-range chart below
    screenshot(page, "chart")
    assert page.console_errors == []


def test_limit_version_boundary_is_drawn(plant: LiveServer, page) -> None:
    open_ui(page, plant, "#/chart/phase")
    page.wait_for_selector("#chart-i[data-boundaries='1']")
    assert page.text_content("[data-field=limits]") == "v2"
    centers = page.evaluate("() => [...new Set(document.querySelector('#chart-i').uplot"
                            ".data[2])]")
    assert centers == [10.0, 10.2]  # the stair step of the centre line


def test_history_zoom_refetches_downsampled_then_detail(plant: LiveServer, page) -> None:
    open_ui(page, plant, "#/chart/long")
    page.wait_for_selector("#chart-i[data-mode=live]")
    assert page.text_content("[data-field=points]") == "500"
    page.click("text=Last 24 h")
    page.wait_for_selector("#chart-i[data-mode=range][data-downsampled=true]")
    n = int(page.text_content("[data-field=points]"))
    assert 1000 < n <= 2001  # an hour of 3600 points reduced to bucket extremes
    # the spike (we1, and the moving range into it) and the moving range out of it: always kept
    assert page.get_attribute("#chart-i", "data-violations") == "2"
    # drag across the middle tenth: a detailed range (about 360 points, not downsampled)
    box = page.locator("#chart-i .u-over").bounding_box()
    y = box["y"] + box["height"] / 2
    page.mouse.move(box["x"] + box["width"] * 0.45, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * 0.55, y, steps=5)
    page.mouse.up()
    page.wait_for_selector("#chart-i[data-downsampled=false]")
    m = int(page.text_content("[data-field=points]"))
    assert 200 < m < 600
    assert page.get_attribute("#chart-i", "data-violations") == "2"  # the spike is mid-hour
    # the touch-friendly buttons: zoom in halves the range
    page.click("#zoom-in")
    page.wait_for_function(
        f"Number(document.querySelector('[data-field=points]').textContent) < {m} * 0.7")
    page.click("#live-btn")
    page.wait_for_selector("#chart-i[data-mode=live]")
    assert page.console_errors == []


def test_acknowledge_through_the_dialog_records_cause_and_action(plant: LiveServer,
                                                                 page) -> None:
    ingest(plant, samples("length", [13.4], t0=datetime.now(UTC)))
    with plant.client("operator") as c:
        alarm = c.get("/alarms", params={"characteristic": "length", "state": "open"}).json()[0]
        cause = c.get("/alarm-causes").json()[0]
    open_ui(page, plant, "#/alarms")
    row = f"#open-alarms tr[data-alarm='{alarm['id']}']"
    page.wait_for_selector(row)
    page.click(f"{row} button[data-ack]")
    page.wait_for_selector("#ack-dialog[open]")
    page.select_option("#ack-cause", cause["key"])
    page.fill("#ack-action", "Replaced the worn insert")
    screenshot(page, "acknowledge")
    page.click("#ack-dialog button[type=submit]")
    page.wait_for_selector("#ack-dialog", state="detached")
    page.wait_for_selector(f"{row}[data-state=acknowledged]")
    stored = fetch_row(plant.dsn, "SELECT state, cause, corrective_action, acknowledged_by "
                       "FROM alarms WHERE id = $1", alarm["id"])
    assert stored["state"] == "acknowledged"
    assert stored["cause"] == cause["key"]
    assert stored["corrective_action"] == "Replaced the worn insert"
    assert stored["acknowledged_by"] == "key:operator"
    # the Pareto now counts that cause; history filters by state
    page.wait_for_selector(f"#pareto rect[data-cause='{cause['key']}']")
    page.select_option("#alarm-filters select[name=state]", "acknowledged")
    page.click("#alarm-filters button[type=submit]")
    page.wait_for_function("[...document.querySelectorAll('#alarm-history tbody tr')]"
                           ".every((r) => r.dataset.state === 'acknowledged')")
    assert page.locator(f"#alarm-history tr[data-alarm='{alarm['id']}']").count() == 1
    # the overview tile turns amber
    page.evaluate("location.hash = '#/'")
    page.wait_for_selector(".tile[data-key=length][data-status=acknowledged]")
    page.evaluate("location.hash = '#/alarms'")
    page.wait_for_selector("#pareto svg")
    screenshot(page, "alarms")
    assert page.console_errors == []


def test_capability_view(plant: LiveServer, page) -> None:
    with plant.client("operator") as c:
        cap = c.get("/characteristics/outlier/capability").json()
    open_ui(page, plant, "#/capability/outlier")
    page.wait_for_selector("#histogram")
    assert page.locator("#histogram rect.bin").count() == len(cap["histogram"]["counts"])
    assert page.locator("#histogram [data-spec]").count() == 2  # LSL and USL
    assert page.locator("#histogram path.normal-overall").count() == 1
    cpk = page.text_content("#cap-indices tr[data-index=Cpk] [data-field=value]")
    assert cpk == f"{cap['cpk']:.3g}"  # three significant digits
    low, high = page.text_content("#cap-indices tr[data-index=Cpk] [data-field=ci]").split(" – ")
    assert float(low) == pytest.approx(cap["cpk_ci"]["low"], rel=1e-2)
    assert float(high) == pytest.approx(cap["cpk_ci"]["high"], rel=1e-2)
    verdict = page.text_content("#normality")
    assert ("Not normal" in verdict) == cap["normality"]["rejected"]
    screenshot(page, "capability")
    page.evaluate("location.hash = '#/capability/flatness'")
    page.wait_for_selector("#cap-unavailable")
    assert "no spec limits" in page.text_content("#cap-unavailable")
    assert page.console_errors == []


def test_operator_sees_no_engineer_controls(plant: LiveServer, page) -> None:
    open_ui(page, plant, "#/chart/outlier")
    page.wait_for_selector("#chart-i canvas")
    assert page.text_content("#role") == "operator"
    assert page.locator(".tabs a[data-tab=limits]").count() == 0
    page.evaluate("location.hash = '#/limits/outlier'")
    page.wait_for_selector("#limits-view")
    assert page.locator("#proposal-form, #activate-form").count() == 0
    assert "needs an engineer key" in page.text_content("#limits-view")
    assert page.console_errors == []


def test_engineer_previews_and_activates_limits(plant: LiveServer, page) -> None:
    open_ui(page, plant, "#/chart/outlier", role="engineer")
    page.wait_for_selector("#chart-i canvas")
    assert page.text_content("#role") == "engineer"
    page.click(".tabs a[data-tab=limits]")
    page.wait_for_selector("#proposal-form")
    page.wait_for_selector("#limits-view #chart-i canvas")
    page.click("#preview")
    page.wait_for_selector("#proposal-summary")
    assert page.text_content("#proposal-summary [data-field=points]") == "40"
    assert page.text_content("#proposal-summary [data-field=excluded]") == "1"
    assert page.locator("#excluded tbody tr").count() == 1
    page.wait_for_selector("#limits-view #chart-i[data-excluded='1']")  # the ✕ on the chart
    center = float(page.text_content("#proposal-summary [data-field=centre]"))
    screenshot(page, "limits")
    page.fill("#limits-reason", "baseline after tool change")
    page.click("#activate")
    page.wait_for_selector("#activated")
    with plant.client("operator") as c:
        latest = c.get("/characteristics/outlier/limits").json()[-1]
    assert latest["version"] == 2
    assert latest["reason"] == "baseline after tool change"
    assert latest["center"] == pytest.approx(center, rel=1e-5)
    assert latest["created_by"] == "key:engineer"
    page.wait_for_selector("#limits-history tr[data-version='2']")
    assert page.console_errors == []


def test_capability_for_tiles_only_while_tiles_are_shown(plant: LiveServer, page) -> None:
    open_ui(page, plant, "#/")
    page.wait_for_selector(".tile[data-key=bore] [data-field=cpk]:text-matches('Cpk [0-9]')")
    seen: list[str] = []
    page.on("request", lambda r: seen.append(r.url))
    # a chart opened directly (a bookmark, a line monitor): no capability study of every
    # characteristic competes with its own requests
    page.goto(f"{plant.url}/ui/?fresh=1#/chart/bore")
    page.wait_for_selector("#chart-i canvas")
    page.wait_for_selector("#alarms")
    api = [u for u in seen if "/api/v1/" in u]
    assert [u for u in api if "/characteristics/bore/chart" in u]
    assert not [u for u in api if "/capability" in u]
    page.evaluate("location.hash = '#/'")
    page.wait_for_selector(".tile[data-key=bore] [data-field=cpk]:text-matches('Cpk [0-9]')")
    assert [u for u in seen if u.endswith("/characteristics/bore/capability")]
    assert page.console_errors == []


def test_a_view_left_while_loading_does_not_draw_over_the_next(plant: LiveServer,
                                                               page) -> None:
    # the overview waits for the tiles' data; the user opens a chart meanwhile
    held: list = []
    page.route("**/api/v1/hierarchy", lambda route: held.append(route))
    page.goto(f"{plant.url}/ui/#key={plant.keys['operator']}")
    page.wait_for_function("document.querySelector('#view')?.dataset.view === 'overview'")
    while not held:
        page.wait_for_timeout(50)
    page.evaluate("location.hash = '#/chart/bore'")
    page.wait_for_selector("#chart-i canvas")
    held[0].continue_()  # now the overview's data arrives
    page.unroute("**/api/v1/hierarchy")
    page.wait_for_selector("#alarm-count[data-count]", state="attached")
    page.wait_for_timeout(300)
    assert page.locator("#chart-view #chart-i canvas").count() >= 1
    assert page.locator(".overview").count() == 0
    assert page.console_errors == []
