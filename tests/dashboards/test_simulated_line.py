"""The whole chain into the browser: simulated machine → OPC UA → edge agent → ingest → SPC →
WebSocket → the operator's chart and overview. A shift injected on the simulator must show up as
a rule marker on the chart and a red tile."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.fixtures.browser import ARTIFACTS, screenshot
from tests.fixtures.server import LiveServer

MEAN, SIGMA = 25.0, 0.005  # bore_diameter in simulators/examples/machining_line.yaml


def test_injected_shift_marks_the_chart_and_turns_the_tile_red(
    live_server: LiveServer, simulator_factory, agent_factory, page,
) -> None:
    sim = simulator_factory(rate=10.0, seed=3)
    with live_server.client("engineer") as c:
        r = c.post("/characteristics", json={"key": "cnc1_bore", "name": "CNC1 bore",
                                             "unit": "mm", "baseline_points": 0,
                                             "lsl": 24.98, "usl": 25.02})
        assert r.status_code == 201, r.text
        r = c.post("/characteristics/cnc1_bore/limits", json={
            "center": MEAN, "sigma": SIGMA, "reason": "process standard",
            "effective_from": (datetime.now(UTC) - timedelta(hours=1)).isoformat()})
        assert r.status_code == 201, r.text
    agent_factory({
        "agent": {"name": "ui-opcua"},
        "server": {"url": live_server.url, "api_key": live_server.agent_key},
        "upload": {"batch_size": 200, "interval_s": 0.2},
        "sources": [{"kind": "opcua", "name": "cnc1", "endpoint": sim.opcua_endpoint,
                     "security": {"policy": "None", "allow_insecure": True},
                     "mode": "poll", "interval_s": 0.1,
                     "tags": [{"node_id": "ns=2;s=Line1.CNC1.bore_diameter",
                               "characteristic": "cnc1_bore", "unit": "mm"}]}],
    })
    page.goto(f"{live_server.url}/ui/#key={live_server.keys['operator']}")
    page.wait_for_selector(".tile[data-key=cnc1_bore]")
    page.click(".tile[data-key=cnc1_bore]")
    page.wait_for_selector("#chart-i canvas")
    # live points arrive from the agent
    page.wait_for_function("Number(document.querySelector('#chart-i').dataset.plotted) >= 20",
                           timeout=30_000)
    # in-control noise may already have tripped a rule by chance: count from here
    before = int(page.get_attribute("#chart-i", "data-violations"))
    shifted_at = datetime.now(UTC)
    sim.inject("bore_diameter", "shift", magnitude=4.0)
    page.wait_for_function(
        f"Number(document.querySelector('#chart-i').dataset.violations) > {before}",
        timeout=20_000)
    with live_server.client("operator") as c:
        alarms = c.get("/alarms", params={"characteristic": "cnc1_bore",
                                          "since": shifted_at.isoformat()}).json()
    assert {a["rule"] for a in alarms} & {"we1", "we2", "we3", "we4"}
    shown = set(page.eval_on_selector_all("#violations td[data-rule]",
                                          "tds => tds.map(t => t.dataset.rule)"))
    assert shown & {"we1", "we2", "we3", "we4"}
    page.wait_for_selector("#alarms tbody tr[data-state=open]")
    screenshot(page, "simulated-shift")
    # the first screenful, as docs/screenshot.png shows it
    page.screenshot(path=str(ARTIFACTS / "simulated-shift-viewport.png"))
    page.click("#main-nav a[data-route=overview]")
    page.wait_for_selector(".tile[data-key=cnc1_bore][data-status=violation]")
    assert page.console_errors == []
