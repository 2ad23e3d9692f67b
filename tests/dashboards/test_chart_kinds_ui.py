"""Every chart kind drawn by the UI from real ingest, and every view fits a 1366x768 panel PC."""

from __future__ import annotations

import random

import pytest

from tests.dashboards.plant import build_plant, calm, ingest, recent
from tests.fixtures.server import LiveServer
from tests.server.helpers import samples

KINDS = {
    # key: (chart_type, extra definition, limits center, main title, companion title or None)
    "k_xbar": ("xbar-r", {"subgroup_size": 5}, 10.0, "Subgroup means", "Ranges"),
    "k_xbars": ("xbar-s", {"subgroup_size": 4}, 10.0, "Subgroup means", "Standard deviations"),
    "k_p": ("p", {}, 0.1, "Fraction defective (p)", None),
    "k_c": ("c", {}, 4.0, "Defects (c)", None),
    "k_ewma": ("ewma", {}, 10.0, "EWMA", None),
    "k_cusum": ("cusum", {}, 10.0, "CUSUM", None),
}


@pytest.fixture(scope="module")
def kinds(live_server: LiveServer) -> LiveServer:
    build_plant(live_server)
    rng = random.Random(3)
    with live_server.client("engineer") as c:
        for key, (kind, extra, center, _, _) in KINDS.items():
            r = c.post("/characteristics", json={"key": key, "name": key, "chart_type": kind,
                                                 "baseline_points": 0, **extra})
            assert r.status_code == 201, r.text
            r = c.post(f"/characteristics/{key}/limits", json={
                "center": center, "sigma": 1.0, "reason": "known",
                "effective_from": "2020-01-01T00:00:00Z"})
            assert r.status_code == 201, r.text
    for key in ("k_xbar", "k_xbars", "k_ewma", "k_cusum"):
        ingest(live_server, samples(key, calm(40, seed=len(key)), t0=recent(40)))
    lots = samples("k_p", [float(rng.randint(2, 8)) for _ in range(30)], t0=recent(30))
    for s in lots:
        s["size"] = 50
    ingest(live_server, lots)
    ingest(live_server, samples("k_c", [float(rng.randint(1, 7)) for _ in range(30)],
                                t0=recent(30)))
    return live_server


def test_every_chart_kind_is_drawn(kinds: LiveServer, page) -> None:
    page.goto(f"{kinds.url}/ui/#key={kinds.keys['operator']}")
    page.wait_for_selector(".overview .tile")
    for key, (_, _, _, title, companion) in KINDS.items():
        page.evaluate(f"location.hash = '#/chart/{key}'")
        page.wait_for_selector(f"#chart-title:text('({key})')")
        page.wait_for_selector("#chart-i canvas")
        assert int(page.get_attribute("#chart-i", "data-plotted")) >= 6, key
        assert page.text_content("#chart-i .u-title").startswith(title), key
        if companion:
            assert page.text_content("#chart-mr .u-title") == companion
        else:
            assert page.is_hidden("#chart-mr")
    page.evaluate("location.hash = '#/capability/k_p'")
    page.wait_for_selector("#cap-unavailable")
    assert "attributes" in page.text_content("#cap-unavailable")
    assert page.console_errors == []


@pytest.mark.parametrize("route", ["#/", "#/chart/bore", "#/alarms", "#/capability/bore",
                                   "#/andon"])
def test_views_fit_a_1366_wide_panel(kinds: LiveServer, page, route: str) -> None:
    page.goto(f"{kinds.url}/ui/#key={kinds.keys['operator']}")
    page.wait_for_selector(".overview .tile")
    page.evaluate(f"location.hash = {route!r}")
    page.wait_for_selector("#view > *:not(.overview)" if route != "#/" else ".overview .tile")
    page.wait_for_timeout(300)  # let charts and tables settle
    assert page.evaluate("document.documentElement.scrollWidth") <= 1366
    assert page.console_errors == []
