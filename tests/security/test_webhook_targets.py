"""Webhook targets cannot turn the server against other services: only http(s) URLs, only the
allow-listed prefixes when SPC_WEBHOOK_ALLOWLIST is set, and redirects are not followed."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from server.core.localdb import LocalCluster
from tests.fixtures.server import LiveServer, start_live_server
from tests.fixtures.webhooks import WebhookReceiver
from tests.security.helpers import characteristic, raise_alarm

NOT_HTTP = [
    "file:///etc/passwd", "gopher://127.0.0.1:25/_HELO", "ftp://127.0.0.1/", "dict://127.0.0.1:11211/",
    "ldap://127.0.0.1/", "javascript:alert(1)", "data:text/plain,x", "unix:///run/postgresql",
    "HTTP://127.0.0.1/", "http:/127.0.0.1/", "http://", "//127.0.0.1/", "127.0.0.1:80/hook",
    " http://127.0.0.1/", "http://x\x00y/",
]
# http(s) URLs that no HTTP client can send to: refused at creation, never a 5xx
UNSENDABLE = ["http://127.0.0.1\r\nHost: evil/", "http://ex\tample/", "http://a/ b",
              "http://127.0.0.1:99999/", "http://[::1/"]


@pytest.mark.parametrize("url", NOT_HTTP)
def test_non_http_urls_are_refused(live_server: LiveServer, url: str) -> None:
    with live_server.client("admin") as admin:
        r = admin.post("/webhooks", json={"url": url})
        assert r.status_code in (400, 422), (url, r.status_code, r.text)
        assert url not in [w["url"] for w in admin.get("/webhooks").json()]


@pytest.mark.parametrize("url", UNSENDABLE)
def test_unsendable_urls_are_refused(live_server: LiveServer, url: str) -> None:
    with live_server.client("admin") as admin:
        r = admin.post("/webhooks", json={"url": url})
        if r.status_code == 201:
            admin.delete(f"/webhooks/{r.json()['id']}")
    assert r.status_code in (400, 422), (url, r.status_code, r.text)


def test_one_unsendable_subscription_does_not_stop_the_others(
    pg_cluster: LocalCluster, tmp_path: Path, webhook_receiver: WebhookReceiver
) -> None:
    server = start_live_server(pg_cluster, tmp_path)
    try:
        with server.client("admin") as admin:
            bad = admin.post("/webhooks", json={"url": "http://127.0.0.1:1/a b\r\nX: y"})
            assert bad.status_code in (201, 400, 422)
            good = admin.post("/webhooks", json={"url": webhook_receiver.url}).json()
            characteristic(server, "after_bad_url")
            raise_alarm(server, "after_bad_url")
            raise_alarm(server, "after_bad_url", start=10)
            deadline = time.monotonic() + 6
            while time.monotonic() < deadline:
                mine = [d for d in admin.get("/webhooks/deliveries").json()
                        if d["subscription_id"] == good["id"]]
                if mine and all(d["state"] == "delivered" for d in mine):
                    break
                time.sleep(0.2)
            worker = admin.get("/health").json()["webhook_worker"]
    finally:
        server.kill()
    assert mine and all(d["state"] == "delivered" for d in mine), (worker, mine)
    ids = {d.headers["webhook-id"] for d in webhook_receiver.deliveries}
    assert ids == {d["event_id"] for d in mine}


@pytest.fixture(scope="module")
def allowlisted(pg_cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[LiveServer]:
    server = start_live_server(
        pg_cluster, tmp_path_factory.mktemp("allowlist"),
        SPC_WEBHOOK_ALLOWLIST="http://127.0.0.1:18080/hooks/, https://mes.example.com/spc/")
    yield server
    server.stop()


@pytest.mark.parametrize(("url", "allowed"), [
    ("http://127.0.0.1:18080/hooks/alarms", True),
    ("https://mes.example.com/spc/in", True),
    ("http://127.0.0.1:18080/other", False),
    ("http://127.0.0.1:18081/hooks/", False),
    ("http://169.254.169.254/latest/meta-data/", False),
    ("http://10.0.0.5/hooks/", False),
    ("http://mes.example.com/spc/in", False),        # https only in the list
    ("https://mes.example.com.evil.net/spc/", False),
    ("https://mes.example.com@10.0.0.5/spc/", False),
    ("http://localhost:5432/", False),
])
def test_allowlist_is_enforced(allowlisted: LiveServer, url: str, allowed: bool) -> None:
    with allowlisted.client("admin") as admin:
        r = admin.post("/webhooks", json={"url": url})
    if allowed:
        assert r.status_code == 201, r.text
    else:
        assert r.status_code == 400, (url, r.status_code, r.text)
        # refused by the allow-list, or earlier (a user@ part is refused outright)
        assert any(w in r.json()["detail"] for w in ("allow-list", "user or password"))


def test_allowlist_entry_without_path_admits_only_its_origin(
    pg_cluster: LocalCluster, tmp_path: Path, webhook_receiver: WebhookReceiver
) -> None:
    allowed_port = 80
    server = start_live_server(pg_cluster, tmp_path,
                               SPC_WEBHOOK_ALLOWLIST=f"http://127.0.0.1:{allowed_port}")
    try:
        other = webhook_receiver.port
        sneaky = [f"http://127.0.0.1:{allowed_port}@127.0.0.1:{other}/hook"]
        if str(other).startswith(str(allowed_port)):
            sneaky.append(f"http://127.0.0.1:{other}/hook")
        with server.client("admin") as admin:
            answers = {u: admin.post("/webhooks", json={"url": u}).status_code for u in sneaky}
            if 201 in answers.values():  # show it is a real bypass, not a string quirk
                characteristic(server, "ssrf")
                raise_alarm(server, "ssrf")
                webhook_receiver.wait_for(1, timeout=10)
    finally:
        server.kill()
    assert set(answers.values()) == {400}, (answers, len(webhook_receiver.deliveries))


class Redirector:
    """Answers every POST with 302 to another URL."""

    def __init__(self, location: str) -> None:
        self.hits = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", 0)))
                outer.hits += 1
                self.send_response(302)
                self.send_header("Location", location)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_redirects_are_not_followed(live_server: LiveServer,
                                    webhook_receiver: WebhookReceiver) -> None:
    # the redirect target stands for an internal service on another host:port
    redirector = Redirector(webhook_receiver.url)
    try:
        with live_server.client("admin") as admin:
            sub = admin.post("/webhooks", json={"url": redirector.url}).json()
            characteristic(live_server, "redirected")
            raise_alarm(live_server, "redirected")
            deadline = time.monotonic() + 20
            mine: list[dict] = []
            while time.monotonic() < deadline:
                mine = [d for d in admin.get("/webhooks/deliveries").json()
                        if d["subscription_id"] == sub["id"]]
                if mine and all(d["state"] == "dead" for d in mine):
                    break
                time.sleep(0.2)
            assert admin.delete(f"/webhooks/{sub['id']}").status_code == 204
    finally:
        redirector.close()
    assert mine and all(d["state"] == "dead" for d in mine), mine
    assert all(d["attempts"] == 4 and "HTTP 302" in d["last_error"] for d in mine), mine
    assert redirector.hits == 4 * len(mine)
    assert webhook_receiver.attempts == 0, "the server followed a redirect to another host"
    # and the metrics count the failed attempts
    metrics = httpx.get(f"{live_server.url}/metrics").text
    assert "spc_webhook_failed_attempts_total" in metrics
