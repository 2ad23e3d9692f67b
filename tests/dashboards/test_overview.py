"""The overview and andon screens in a real browser against a live server fed via ingest."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.dashboards.plant import KNOWN, build_plant, ingest
from tests.fixtures.browser import collect_errors, screenshot
from tests.fixtures.server import LiveServer
from tests.server.helpers import samples


@pytest.fixture(scope="module")
def plant(live_server: LiveServer) -> LiveServer:
    build_plant(live_server)
    return live_server


def open_ui(page, server: LiveServer, role: str = "operator", route: str = "") -> None:
    page.goto(f"{server.url}/ui/#key={server.keys[role]}")
    page.wait_for_selector("#connection[data-state=live]")
    if route:
        page.evaluate(f"location.hash = {route!r}")


def tile(key: str) -> str:
    return f".overview .tile[data-key={key}]"


def test_overview_tree_statuses_and_no_console_errors(plant: LiveServer, page) -> None:
    open_ui(page, plant)
    page.wait_for_selector(tile("bore"))
    assert page.text_content(".overview .site > h2") == "Plant 1"
    assert page.locator(".overview .line > h3").all_text_contents() == ["Line A", "Line B"]
    assert page.locator(".line[data-line=lineA] .station > h4").all_text_contents() == [
        "OP10 turning", "OP20 grinding"]
    # the characteristic outside any station still has a tile
    page.wait_for_selector(tile("spare"))
    assert page.get_attribute(tile("bore"), "data-status") == "ok"
    assert page.get_attribute(tile("flatness"), "data-status") == "stale"
    assert page.get_attribute(tile("torque"), "data-status") == "nolimits"
    # Cpk from the capability endpoint where specs exist, nothing where there are none
    page.wait_for_function(
        "document.querySelector('.tile[data-key=bore] [data-field=cpk]').textContent"
        ".startsWith('Cpk ') && !document.querySelector('.tile[data-key=bore] "
        "[data-field=cpk]').textContent.includes('–')")
    cpk = float(page.text_content(tile("bore") + " [data-field=cpk]").split()[1])
    with plant.client("operator") as c:
        assert cpk == pytest.approx(c.get("/characteristics/bore/capability").json()["cpk"],
                                    rel=1e-3)
    assert page.text_content(tile("flatness") + " [data-field=cpk]") == ""
    assert page.text_content(tile("bore") + " [data-field=alarms]") == "no alarms"
    screenshot(page, "overview")
    assert page.console_errors == []


def test_touch_targets_are_at_least_44px(plant: LiveServer, page) -> None:
    open_ui(page, plant)
    page.wait_for_selector(tile("bore"))
    small = page.evaluate("""() => [...document.querySelectorAll('button, #main-nav a, select')]
        .filter((e) => e.offsetParent !== null)
        .map((e) => [e.textContent.trim().slice(0, 20), e.getBoundingClientRect()])
        .filter(([, r]) => r.height < 44 || r.width < 44).map(([t]) => t)""")
    assert small == []


def test_new_point_and_violation_update_the_tile_live(plant: LiveServer, page) -> None:
    open_ui(page, plant)
    page.wait_for_selector(tile("length") + "[data-status=ok]")
    ingest(plant, samples("length", [10.7], t0=datetime.now(UTC)))
    page.wait_for_function(
        "document.querySelector('.tile[data-key=length] [data-field=last]').firstChild"
        ".textContent === '10.7'", timeout=2000)
    # beyond UCL 13, with a moving range (2.8) inside its limit: exactly one alarm (we1)
    ingest(plant, samples("length", [13.5], t0=datetime.now(UTC)))
    page.wait_for_selector(tile("length") + "[data-status=violation]", timeout=2000)
    assert page.text_content(tile("length") + " [data-field=alarms]") == "1 open alarm"
    assert page.text_content("#alarm-count") == "1"
    # a characteristic that reports again is no longer stale
    assert page.get_attribute(tile("flatness"), "data-status") == "stale"
    ingest(plant, samples("flatness", [10.2], t0=datetime.now(UTC)))
    page.wait_for_selector(tile("flatness") + "[data-status=ok]", timeout=2000)
    assert page.console_errors == []


def test_andon_puts_red_tiles_first(plant: LiveServer, browser) -> None:
    # A line monitor: a large TV.
    ingest(plant, samples("length", [13.5], t0=datetime.now(UTC)))  # beyond UCL: red
    context = browser.new_context(viewport={"width": 1920, "height": 1080})
    page = context.new_page()
    collect_errors(page)
    try:
        open_ui(page, plant, route="#/andon/lineA")
        page.wait_for_selector("#andon-grid .tile")
        page.wait_for_selector("#andon-grid .tile[data-status=violation]")
        keys = page.eval_on_selector_all("#andon-grid .tile", "ts => ts.map(t => t.dataset.key)")
        assert set(keys) == {"bore", "length", "flatness"}  # line A only
        assert keys[0] == "length"  # the red one first
        size = page.eval_on_selector("#andon-grid .tile[data-key=length] .tile-value",
                                     "e => parseFloat(getComputedStyle(e).fontSize)")
        assert size >= 60  # about 1.5 cm tall digits on a 55" TV: readable at 5 m
        screenshot(page, "andon")
        assert page.console_errors == []
    finally:
        context.close()


def test_login_is_kept_until_logout(plant: LiveServer, page) -> None:
    open_ui(page, plant)
    page.wait_for_selector(tile("bore"))
    assert "key=" not in page.url  # the key left the address bar
    page.reload()  # kept across reloads (localStorage) ...
    page.wait_for_selector(tile("bore"))
    page.click("#logout")  # ... until logout
    page.wait_for_selector("#login:not([hidden])")
    assert page.evaluate("localStorage.getItem('spc.apiKey')") is None
    assert page.is_hidden("#view") and page.is_hidden("#main-nav")
    page.reload()
    page.wait_for_selector("#login:not([hidden])")
    assert page.console_errors == []


def test_a_characteristic_created_later_gets_a_tile(plant: LiveServer, page) -> None:
    open_ui(page, plant)
    page.wait_for_selector(tile("bore"))
    with plant.client("engineer") as c:
        r = c.post("/characteristics", json={"key": "late", "name": "Late gauge",
                                             "station": "b-op10", "baseline_points": 0})
        assert r.status_code == 201, r.text
        assert c.post("/characteristics/late/limits", json=KNOWN).status_code == 201
    ingest(plant, samples("late", [10.1, 9.9], t0=datetime.now(UTC)))
    page.wait_for_selector(".overview .line[data-line=lineB] .tile[data-key=late][data-status=ok]",
                           timeout=5000)
    assert page.console_errors == []
