"""Every operation of the live server's OpenAPI, with every role, no key, a forged key and a
revoked key of every role: the allowed roles get past authorization, the others get 403, and a
request without a valid key gets 401.

`REQUIRED` is the table of the role each operation needs. It is compared with the operations the
running server publishes at /openapi.json, so a route added without an entry here (or one removed)
fails `test_every_operation_has_a_required_role`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from server.security import ROLE_GRANTS, ROLES
from tests.fixtures.server import LiveServer
from tests.server.helpers import batch_headers, samples

CHAR = "sec_bore"
MISSING = 99_999_999  # an id no row has: allowed roles get 404, which proves they got past auth


def _u(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:8]}"


Body = Callable[[], dict[str, Any]]


def _req(json: Body | None = None, params: dict[str, Any] | None = None,
         idempotency: bool = False) -> Callable[[], dict[str, Any]]:
    def build() -> dict[str, Any]:
        kw: dict[str, Any] = {}
        if json is not None:
            kw["json"] = json()
        if params is not None:
            kw["params"] = params
        if idempotency:
            kw["headers"] = {"Idempotency-Key": str(uuid.uuid4())}
        return kw

    return build


# (method, path template) -> (role required or None for public, concrete path, request builder)
REQUIRED: dict[tuple[str, str], tuple[str | None, str, Callable[[], dict[str, Any]]]] = {
    # ingest / heartbeat
    ("POST", "/api/v1/ingest"): ("agent", "/api/v1/ingest", _req(
        lambda: {"agent": "sec", "samples": samples(CHAR, [10.0], start=uuid.uuid4().int % 10**6)},
        idempotency=True)),
    ("POST", "/api/v1/agents/heartbeat"): ("agent", "/api/v1/agents/heartbeat", _req(
        lambda: {"agent": "sec-agent", "buffer_depth": 0, "dropped": 0, "sources": []})),
    # read
    ("GET", "/api/v1/hierarchy"): ("operator", "/api/v1/hierarchy", _req()),
    ("GET", "/api/v1/me"): ("operator", "/api/v1/me", _req()),
    ("GET", "/api/v1/characteristics"): ("operator", "/api/v1/characteristics", _req()),
    ("GET", "/api/v1/characteristics/{key}"): ("operator", f"/api/v1/characteristics/{CHAR}",
                                               _req()),
    ("GET", "/api/v1/characteristics/{key}/limits"): (
        "operator", f"/api/v1/characteristics/{CHAR}/limits", _req()),
    ("GET", "/api/v1/characteristics/{key}/chart"): (
        "operator", f"/api/v1/characteristics/{CHAR}/chart", _req()),
    ("GET", "/api/v1/characteristics/{key}/export.csv"): (
        "operator", f"/api/v1/characteristics/{CHAR}/export.csv", _req()),
    ("GET", "/api/v1/characteristics/{key}/capability"): (
        "operator", f"/api/v1/characteristics/{CHAR}/capability", _req()),
    ("GET", "/api/v1/characteristics/{key}/rollups"): (
        "operator", f"/api/v1/characteristics/{CHAR}/rollups", _req()),
    ("GET", "/api/v1/alarms"): ("operator", "/api/v1/alarms", _req()),
    ("GET", "/api/v1/alarms/pareto"): ("operator", "/api/v1/alarms/pareto", _req()),
    ("GET", "/api/v1/alarms/{alarm_id}"): ("operator", f"/api/v1/alarms/{MISSING}", _req()),
    ("GET", "/api/v1/alarm-causes"): ("operator", "/api/v1/alarm-causes", _req()),
    # acknowledge
    ("POST", "/api/v1/alarms/{alarm_id}/acknowledge"): (
        "operator", f"/api/v1/alarms/{MISSING}/acknowledge",
        _req(lambda: {"cause": "tool_wear", "corrective_action": "x"})),
    ("POST", "/api/v1/alarms/{alarm_id}/close"): (
        "operator", f"/api/v1/alarms/{MISSING}/close", _req(lambda: {"note": "x"})),
    # engineer writes: characteristics, limits, causes, hierarchy
    ("POST", "/api/v1/characteristics"): ("engineer", "/api/v1/characteristics", _req(
        lambda: {"key": _u("c"), "name": "c", "baseline_points": 0})),
    ("PATCH", "/api/v1/characteristics/{key}"): (
        "engineer", f"/api/v1/characteristics/{CHAR}", _req(lambda: {"name": "Bore (sec)"})),
    ("POST", "/api/v1/characteristics/{key}/limits"): (
        "engineer", f"/api/v1/characteristics/{CHAR}/limits",
        _req(lambda: {"center": 10.0, "sigma": 1.0, "reason": "role matrix"})),
    ("POST", "/api/v1/characteristics/{key}/limits/proposal"): (
        "engineer", f"/api/v1/characteristics/{CHAR}/limits/proposal", _req(lambda: {})),
    ("POST", "/api/v1/alarm-causes"): ("engineer", "/api/v1/alarm-causes", _req(
        lambda: {"key": _u("cause"), "label": "c", "category": "machine"})),
    ("POST", "/api/v1/sites"): ("engineer", "/api/v1/sites",
                                _req(lambda: {"key": _u("site"), "name": "s"})),
    ("POST", "/api/v1/lines"): ("engineer", "/api/v1/lines", _req(
        lambda: {"key": _u("line"), "name": "l", "parent": "secsite"})),
    ("POST", "/api/v1/stations"): ("engineer", "/api/v1/stations", _req(
        lambda: {"key": _u("st"), "name": "s", "parent": "secline"})),
    ("GET", "/api/v1/audit"): ("engineer", "/api/v1/audit", _req()),
    # admin: keys, webhooks
    ("GET", "/api/v1/keys"): ("admin", "/api/v1/keys", _req()),
    ("POST", "/api/v1/keys"): ("admin", "/api/v1/keys",
                               _req(lambda: {"role": "operator", "name": _u("k")})),
    ("DELETE", "/api/v1/keys/{key_id}"): ("admin", f"/api/v1/keys/{MISSING}", _req()),
    ("GET", "/api/v1/webhooks"): ("admin", "/api/v1/webhooks", _req()),
    ("POST", "/api/v1/webhooks"): ("admin", "/api/v1/webhooks",
                                   _req(lambda: {"url": "http://127.0.0.1:9/hook"})),
    ("DELETE", "/api/v1/webhooks/{sub_id}"): ("admin", f"/api/v1/webhooks/{MISSING}", _req()),
    ("POST", "/api/v1/webhooks/{sub_id}/test"): ("admin", f"/api/v1/webhooks/{MISSING}/test",
                                                 _req()),
    ("GET", "/api/v1/webhooks/deliveries"): ("admin", "/api/v1/webhooks/deliveries", _req()),
    ("POST", "/api/v1/webhooks/deliveries/{delivery_id}/resend"): (
        "admin", f"/api/v1/webhooks/deliveries/{MISSING}/resend", _req()),
    # public: probes
    ("GET", "/api/v1/health"): (None, "/api/v1/health", _req()),
}

OPERATIONS = sorted(REQUIRED)
CALLERS = [*ROLES, "none", "forged", "malformed", "revoked"]


@pytest.fixture(scope="module")
def server(live_server: LiveServer) -> Iterator[LiveServer]:
    with live_server.client("engineer") as c:
        assert c.post("/sites", json={"key": "secsite", "name": "S"}).status_code == 201
        assert c.post("/lines", json={"key": "secline", "name": "L",
                                      "parent": "secsite"}).status_code == 201
        r = c.post("/characteristics", json={"key": CHAR, "name": "Bore", "baseline_points": 0})
        assert r.status_code == 201, r.text
        r = c.post(f"/characteristics/{CHAR}/limits", json={
            "center": 10.0, "sigma": 1.0, "reason": "known",
            "effective_from": "2026-01-01T00:00:00Z"})
        assert r.status_code == 201, r.text
    r = httpx.post(f"{live_server.url}/api/v1/ingest",
                   json={"samples": samples(CHAR, [10.0, 9.0, 11.0, 10.5, 9.5])},
                   headers=batch_headers(live_server.headers("agent")))
    assert r.status_code == 200, r.text
    # one key of every role, revoked through the API
    with live_server.client("admin") as admin:
        for role in ROLES:
            created = admin.post("/keys", json={"role": role, "name": f"revoked-{role}"}).json()
            assert admin.delete(f"/keys/{created['id']}").status_code == 204
            live_server.keys[f"revoked-{role}"] = created["key"]
    yield live_server


def auth_headers(server: LiveServer, caller: str) -> dict[str, str]:
    if caller == "none":
        return {}
    if caller == "forged":
        return {"Authorization": "Bearer spc_0badc0de_" + "A" * 43}
    if caller == "malformed":
        return {"Authorization": "Basic YWRtaW46YWRtaW4="}
    if caller == "revoked":
        # a revoked admin key: the most powerful one must be dead too
        return {"Authorization": f"Bearer {server.keys['revoked-admin']}"}
    return server.headers(caller)


def test_every_operation_has_a_required_role(server: LiveServer) -> None:
    schema = httpx.get(f"{server.url}/openapi.json", timeout=10).json()
    published = {(method.upper(), path) for path, ops in schema["paths"].items()
                 for method in ops if method in ("get", "post", "put", "patch", "delete")}
    missing = published - set(REQUIRED)
    stale = set(REQUIRED) - published
    assert not missing, f"operations without a required role in REQUIRED: {sorted(missing)}"
    assert not stale, f"REQUIRED names operations the server no longer has: {sorted(stale)}"
    assert len(published) >= 30


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda op: f"{op[0]} {op[1]}")
def test_role_matrix(server: LiveServer, operation: tuple[str, str], caller: str) -> None:
    role, path, build = REQUIRED[operation]
    kw = build()
    headers = {**kw.pop("headers", {}), **auth_headers(server, caller)}
    r = httpx.request(operation[0], server.url + path, headers=headers, timeout=30, **kw)
    assert r.status_code < 500, r.text
    if role is None:
        assert r.status_code not in (401, 403), r.text
    elif caller in ROLES and caller in ROLE_GRANTS[role]:
        assert r.status_code not in (401, 403), f"{caller} refused on {operation}: {r.text}"
    elif caller in ROLES:
        assert r.status_code == 403, f"{caller} not refused on {operation}: {r.status_code}"
        body = r.json()
        assert body["error"] == "PermissionDenied" and f"{role} role" in body["detail"]
    else:
        assert r.status_code == 401, f"{caller} not refused on {operation}: {r.status_code}"
        assert r.json()["error"] == "AuthenticationRequired"


def test_revoked_keys_of_every_role_are_refused(server: LiveServer) -> None:
    probes = {"agent": ("POST", "/api/v1/agents/heartbeat", {"agent": "x"}),
              "operator": ("GET", "/api/v1/alarms", None),
              "engineer": ("GET", "/api/v1/audit", None),
              "admin": ("GET", "/api/v1/keys", None)}
    for role, (method, path, body) in probes.items():
        key = server.keys[f"revoked-{role}"]
        r = httpx.request(method, server.url + path, json=body, timeout=10,
                          headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 401, (role, r.status_code, r.text)


def test_revocation_takes_effect_on_the_next_request(server: LiveServer) -> None:
    with server.client("admin") as admin:
        created = admin.post("/keys", json={"role": "operator", "name": "short-lived"}).json()
        h = {"Authorization": f"Bearer {created['key']}"}
        assert httpx.get(f"{server.url}/api/v1/alarms", headers=h).status_code == 200
        assert admin.delete(f"/keys/{created['id']}").status_code == 204
        assert httpx.get(f"{server.url}/api/v1/alarms", headers=h).status_code == 401
        # and it is no longer listed, nor can it be revoked twice
        assert created["id"] not in [k["id"] for k in admin.get("/keys").json()]
        assert admin.delete(f"/keys/{created['id']}").status_code == 404


def test_a_key_with_a_right_prefix_and_wrong_secret_is_refused(server: LiveServer) -> None:
    prefix = server.keys["admin"].split("_")[1]
    for secret in ("x", server.keys["admin"].split("_", 2)[2][:-1] + "A", "A" * 43):
        h = {"Authorization": f"Bearer spc_{prefix}_{secret}"}
        assert httpx.get(f"{server.url}/api/v1/keys", headers=h).status_code == 401
