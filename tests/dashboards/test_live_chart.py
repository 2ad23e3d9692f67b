"""The operator page in a real browser against a live server: login, live chart, violations."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.fixtures.browser import screenshot
from tests.fixtures.server import LiveServer
from tests.server.helpers import batch_headers, samples

CALM = [10.0, 10.5, 9.5, 10.2, 9.8, 10.1, 9.9, 10.3, 9.7, 10.0]


@pytest.fixture(scope="module")
def charted(live_server: LiveServer) -> LiveServer:
    with live_server.client("engineer") as c:
        c.post("/characteristics", json={"key": "ui_bore", "name": "Bore diameter",
                                         "unit": "mm", "baseline_points": 0})
        c.post("/characteristics/ui_bore/limits", json={
            "center": 10.0, "sigma": 1.0, "reason": "known",
            "effective_from": "2026-01-01T00:00:00Z"})
    ingest(live_server, samples("ui_bore", CALM))
    return live_server


def ingest(server: LiveServer, batch: list[dict]) -> None:
    r = httpx.post(f"{server.url}/api/v1/ingest", json={"samples": batch},
                   headers=batch_headers(server.headers("agent")))
    assert r.status_code == 200, r.text


def test_login_rejects_a_bad_key(charted: LiveServer, page) -> None:
    page.goto(f"{charted.url}/")
    page.fill("#api-key", "spc_00000000_wrong")
    page.click("#login button[type=submit]")
    page.wait_for_selector("text=That key is not valid.")
    assert page.is_hidden("#app")


def test_live_chart_updates_and_marks_violation(charted: LiveServer, page) -> None:
    page.goto(f"{charted.url}/ui/#key={charted.keys['operator']}")
    page.wait_for_selector(".tile[data-key=ui_bore]")
    page.click(".tile[data-key=ui_bore]")
    page.wait_for_selector("#chart-i canvas")
    page.wait_for_selector("#connection[data-state=live]")
    assert page.text_content("[data-field=points]") == "10"
    assert page.get_attribute("#chart-i", "data-plotted") == "10"
    assert page.text_content("[data-field=UCL]") == "13"
    sent = time.monotonic()
    ingest(charted, samples("ui_bore", [14.0], start=10))
    page.wait_for_function(
        "document.querySelector('[data-field=points]').textContent === '11'", timeout=2000)
    elapsed = time.monotonic() - sent
    assert page.get_attribute("#chart-i", "data-plotted") == "11"
    assert elapsed < 2.0  # the promise: a new point appears within 2 s of ingest
    page.wait_for_selector("#alarms tbody tr[data-state=open]")
    # 14 is beyond UCL 13 (we1) and 4 above 10, beyond the moving range's UCL 3.69 (mr:nelson1)
    page.wait_for_function("document.querySelector('#alarm-count').textContent === '2'")
    rules = page.eval_on_selector_all("#violations td[data-rule]",
                                      "tds => tds.map(t => t.dataset.rule)")
    assert sorted(rules) == ["mr:nelson1", "we1"]
    assert "1 point beyond 3σ" in page.text_content("#violations")
    assert "1 point beyond 3σ" in page.text_content("#alarms tbody")
    screenshot(page, "live-chart")
    assert page.console_errors == []


def test_reconnects_after_a_server_restart_and_catches_up(charted: LiveServer, page) -> None:
    page.goto(f"{charted.url}/ui/#key={charted.keys['operator']}")
    page.wait_for_selector("#connection[data-state=live]")
    page.evaluate("location.hash = '#/chart/ui_bore'")
    page.wait_for_selector("#chart-i canvas")
    before = int(page.text_content("[data-field=points]"))
    charted.stop()
    page.wait_for_selector("#connection[data-state=offline]")
    # a point stored while the page is disconnected must not be lost to it
    charted.start()
    ingest(charted, samples("ui_bore", [10.4], start=40))
    page.wait_for_selector("#connection[data-state=live]", timeout=15_000)
    page.wait_for_function(
        f"document.querySelector('[data-field=points]')?.textContent === '{before + 1}'",
        timeout=5000)
    # while the server was down the browser logged failed WebSocket attempts; nothing else
    assert [e for e in page.console_errors if "WebSocket" not in e] == []
