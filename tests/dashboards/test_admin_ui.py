"""The admin screens (API keys, webhooks) and the limits' effective-from field, in a real browser
against a live server: what each role is shown, what the database holds afterwards, and the
server's own words on bad input, with nothing half-applied."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest

from server.services import webhook_signing
from tests.dashboards.plant import build_plant
from tests.dashboards.test_views import fetch_row
from tests.fixtures.browser import collect_errors, screenshot
from tests.fixtures.server import LiveServer


@pytest.fixture(scope="module")
def plant(live_server: LiveServer) -> LiveServer:
    build_plant(live_server)
    return live_server


def open_ui(page, server: LiveServer, route: str, role: str) -> None:
    page.goto(f"{server.url}/ui/#key={server.keys[role]}")
    page.wait_for_selector("#connection[data-state=live]")
    page.wait_for_selector(".overview .tile")
    page.evaluate(f"location.hash = {route!r}")


def http_errors(page) -> list[str]:
    """Console errors other than Chromium's "Failed to load resource: ... status of 4xx" lines,
    which a test that provokes a refusal expects (one per refused request)."""
    return [e for e in page.console_errors if "the server responded with a status of 4" not in e]


def refused(page, status: int) -> int:
    return sum(f"status of {status}" in e for e in page.console_errors)


def me(server: LiveServer, key: str) -> httpx.Response:
    return httpx.get(f"{server.url}/api/v1/me", headers={"Authorization": f"Bearer {key}"},
                     timeout=10)


@pytest.mark.parametrize("role", ["operator", "engineer"])
def test_only_admins_see_keys_and_webhooks(plant: LiveServer, page, role: str) -> None:
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    open_ui(page, plant, "#/", role)
    assert page.text_content("#role") == role
    assert page.is_hidden("#main-nav a[data-route=keys]")
    assert page.is_hidden("#main-nav a[data-route=webhooks]")
    for route, view in (("#/keys", "#keys-view"), ("#/webhooks", "#webhooks-view")):
        page.evaluate(f"location.hash = {route!r}")
        page.wait_for_selector(view)
        assert "needs an admin key" in page.text_content(view)
        assert page.locator("#key-form, #hook-form").count() == 0
    # the role comes from GET /me: no request the key may not make, so no 403 anywhere
    assert not [u for u in requests if re.search(r"/api/v1/(keys|webhooks|audit)", u)]
    assert page.console_errors == []


def test_admin_creates_sees_once_and_revokes_a_key(plant: LiveServer, page) -> None:
    open_ui(page, plant, "#/", "admin")
    page.click("#main-nav a[data-route=keys]")
    page.wait_for_selector("#keys-table tbody tr")
    # the four fixture keys; the one in use is marked
    assert page.locator("#keys-table tbody tr").count() == 4
    mine = page.locator("#keys-table tr[data-mine]")
    assert mine.count() == 1 and mine.get_attribute("data-role") == "admin"

    page.select_option("#key-role", "operator")
    assert page.is_hidden("#key-scope")  # a line scope is for agent keys only
    page.fill("#key-name", "Line 1 panel PC")
    page.click("#create-key")
    page.wait_for_selector("#new-key")
    key = page.input_value("#new-key .secret-value")
    screenshot(page, "keys")
    r = me(plant, key)
    assert r.status_code == 200 and r.json() == {"role": "operator", "name": "Line 1 panel PC",
                                                 "scope": None}
    prefix = key.split("_")[1]
    row = page.locator("#keys-table tbody tr", has_text=prefix)
    assert row.get_attribute("data-role") == "operator"
    key_id = int(row.get_attribute("data-key-id"))
    # shown once: gone when the screen is opened again, and nowhere in the page
    page.evaluate("location.hash = '#/'")
    page.wait_for_selector(".overview .tile")
    page.evaluate("location.hash = '#/keys'")
    page.wait_for_selector(f"#keys-table tr[data-key-id='{key_id}']")
    assert page.locator("#new-key").count() == 0
    assert key.split("_", 2)[2] not in page.content()

    # an agent key limited to one line
    page.select_option("#key-role", "agent")
    page.select_option("#key-scope", "lineA")
    page.fill("#key-name", "edge-1")
    page.click("#create-key")
    page.wait_for_selector("#new-key")
    agent_key = page.input_value("#new-key .secret-value")
    stored = fetch_row(plant.dsn, "SELECT role, name, scope FROM api_keys WHERE prefix = $1",
                       agent_key.split("_")[1])
    assert dict(stored) == {"role": "agent", "name": "edge-1", "scope": "lineA"}

    # revoke through the dialog: refused at once
    page.click(f"#keys-table button[data-revoke='{key_id}']")
    page.wait_for_selector("#revoke-dialog[open]")
    assert "Line 1 panel PC" in page.text_content("#revoke-dialog h2")
    page.click("#revoke-dialog button[type=submit]")
    page.wait_for_selector("#revoke-dialog", state="detached")
    page.wait_for_selector(f"#keys-table tr[data-key-id='{key_id}']", state="detached")
    assert me(plant, key).status_code == 401
    assert fetch_row(plant.dsn, "SELECT revoked_at FROM api_keys WHERE id = $1",
                     key_id)["revoked_at"] is not None
    assert page.console_errors == []


def test_revoking_a_key_someone_else_revoked_shows_the_servers_error(plant: LiveServer,
                                                                      page) -> None:
    with plant.client("admin") as admin:
        created = admin.post("/keys", json={"role": "operator", "name": "twice"}).json()
    open_ui(page, plant, "#/keys", "admin")
    page.wait_for_selector(f"#keys-table tr[data-key-id='{created['id']}']")
    with plant.client("admin") as admin:  # another admin, meanwhile
        assert admin.delete(f"/keys/{created['id']}").status_code == 204
    page.click(f"#keys-table button[data-revoke='{created['id']}']")
    page.click("#revoke-dialog button[type=submit]")
    page.wait_for_selector("#revoke-dialog .error:has-text('no active key')")
    assert page.text_content("#revoke-dialog .error") == f"no active key {created['id']}"
    page.click("#revoke-dialog button.secondary")  # cancel
    page.wait_for_selector("#revoke-dialog", state="detached")
    # the admin's own key is untouched and still in the list
    assert page.locator("#keys-table tr[data-mine]").count() == 1
    assert me(plant, plant.keys["admin"]).status_code == 200
    assert refused(page, 404) == 1 and http_errors(page) == []


def test_admin_subscribes_tests_and_resends_a_dead_letter(plant: LiveServer, page,
                                                          webhook_receiver) -> None:
    open_ui(page, plant, "#/", "admin")
    page.click("#main-nav a[data-route=webhooks]")
    page.wait_for_selector("#hook-form")

    # bad URLs: the server's words, nothing stored
    page.fill("#hook-url", "http://127.0.0.1:99999/hook")
    page.click("#create-hook")
    page.wait_for_selector("#hook-error:not(:empty)")
    assert page.text_content("#hook-error") == (
        "webhook url is not a valid URL: Port out of range 0-65535")
    page.fill("#hook-url", "ftp://mes.example.com/hook")
    page.click("#create-hook")
    page.wait_for_function("document.querySelector('#hook-error').textContent.includes('url')"
                           " && !document.querySelector('#hook-error').textContent"
                           ".includes('Port')")
    assert "^https?://" in page.text_content("#hook-error")  # the schema's pattern, as refused
    assert page.locator("#new-secret").count() == 0
    assert fetch_row(plant.dsn, "SELECT count(*) AS n FROM webhook_subscriptions")["n"] == 0

    # a real receiver: subscribe, the secret is shown once
    page.fill("#hook-url", webhook_receiver.url)
    page.check("input[data-event='alarm.closed']")
    page.click("#create-hook")
    page.wait_for_selector("#new-secret")
    assert page.text_content("#hook-error") == ""
    secret = page.input_value("#new-secret .secret-value")
    hook = page.locator("#hooks-table tbody tr")
    assert hook.count() == 1
    hook_id = int(hook.get_attribute("data-hook"))
    stored = fetch_row(plant.dsn, "SELECT url, secret, events FROM webhook_subscriptions "
                       "WHERE id = $1", hook_id)
    assert stored["url"] == webhook_receiver.url and stored["secret"] == secret
    assert stored["events"] == ["alarm.opened", "alarm.closed"]

    # a test event, signed with that secret, shown as delivered
    page.click(f"button[data-test='{hook_id}']")
    page.wait_for_selector("#deliveries-table tr[data-type='webhook.test'][data-state=delivered]",
                           timeout=15000)
    got = webhook_receiver.wait_for(1)[0]
    webhook_signing.verify(secret, got.headers, got.body)
    assert got.json["type"] == "webhook.test"
    assert got.json["data"]["subscription_id"] == hook_id

    # a receiver failing every attempt: a dead letter with its error, then re-sent
    webhook_receiver.failures_to_give = 4  # SPC_WEBHOOK_MAX_ATTEMPTS of the live server
    page.click(f"button[data-test='{hook_id}']")
    dead = "#deliveries-table tr[data-state=dead]"
    page.wait_for_selector(dead, timeout=20000)  # the page follows pending deliveries itself
    assert page.text_content(f"{dead} [data-field=error]").startswith("HTTP 500")
    screenshot(page, "webhooks")
    page.select_option("#delivery-state", "dead")
    page.wait_for_function("[...document.querySelectorAll('#deliveries-table tbody tr')]"
                           ".every((r) => r.dataset.state === 'dead')")
    delivery = int(page.get_attribute(dead, "data-delivery"))
    page.select_option("#delivery-state", "")
    page.click(f"button[data-resend='{delivery}']")
    page.wait_for_selector(
        f"#deliveries-table tr[data-delivery='{delivery}'][data-state=delivered]", timeout=15000)
    assert len(webhook_receiver.wait_for(2)) == 2

    # delete through the dialog: gone with its deliveries
    page.click(f"button[data-delete='{hook_id}']")
    page.click("#delete-hook-dialog button[type=submit]")
    page.wait_for_selector(f"#hooks-table tr[data-hook='{hook_id}']", state="detached")
    assert fetch_row(plant.dsn, "SELECT count(*) AS n FROM webhook_subscriptions")["n"] == 0
    assert refused(page, 400) == 1 and refused(page, 422) == 1 and http_errors(page) == []


def test_engineer_sets_when_new_limits_take_effect(plant: LiveServer, browser) -> None:
    # an operator panel in India: the field speaks local time, the server stores the instant
    zone = "Asia/Kolkata"
    context = browser.new_context(viewport={"width": 1366, "height": 768}, timezone_id=zone)
    page = context.new_page()
    collect_errors(page)
    try:
        open_ui(page, plant, "#/limits/bore", "engineer")
        page.wait_for_selector("#proposal-form")
        page.click("#preview")
        page.wait_for_selector("#activate-form")
        assert "UTC+05:30" in page.text_content("#activate-form")
        page.fill("#limits-reason", "new gauge from the first shift")
        # before the current version (in force since 2020): refused, nothing stored
        page.fill("#limits-effective", "2019-06-01T08:00:00")
        page.click("#activate")
        page.wait_for_selector("#activate-error:not(:empty)")
        assert page.text_content("#activate-error") == (
            "effective_from must be after the current version's (2020-01-01T00:00:00+00:00)")
        assert page.locator("#activated").count() == 0
        count = "SELECT count(*) AS n FROM control_limits WHERE characteristic_id = " \
                "(SELECT id FROM characteristics WHERE key = 'bore')"
        assert fetch_row(plant.dsn, count)["n"] == 1
        # an hour from now, local time
        at = (datetime.now(ZoneInfo(zone)) + timedelta(hours=1)).replace(microsecond=0)
        page.fill("#limits-effective", at.strftime("%Y-%m-%dT%H:%M:%S"))
        page.click("#activate")
        page.wait_for_selector("#activated")
        stored = fetch_row(plant.dsn, "SELECT version, effective_from, reason FROM control_limits "
                           "WHERE characteristic_id = (SELECT id FROM characteristics "
                           "WHERE key = 'bore') ORDER BY version DESC LIMIT 1")
        assert stored["version"] == 2
        assert stored["effective_from"] == at.astimezone(UTC)
        assert stored["reason"] == "new gauge from the first shift"
        page.wait_for_selector("#limits-history tr[data-version='2']")
        # empty means now
        page.click("#preview")
        page.wait_for_selector("#activate-form")
        page.fill("#limits-reason", "effective at once")
        page.click("#activate")
        page.wait_for_selector("#activate-error:not(:empty)")  # still before v2's start
        assert "must be after the current version's" in page.text_content("#activate-error")
        assert refused(page, 409) == 2 and http_errors(page) == []
    finally:
        context.close()
