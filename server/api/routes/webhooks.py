"""Webhook subscriptions for MES systems, and their deliveries (including dead letters)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import SplitResult, urlsplit

import httpx
from fastapi import APIRouter, Query

from server.api.deps import AdminKey, AppSettings, Pool, Worker
from server.exceptions import InvalidRequest, NotFound
from server.models import DeliveryPublic, WebhookCreate, WebhookPublic
from server.repository import audit as audit_repo
from server.repository import webhooks as webhooks_repo
from server.services import webhook_signing

router = APIRouter(prefix="/webhooks", tags=["webhooks"])


def check_url(url: str, allowlist: str) -> None:
    """Refuse what an HTTP client could not send, or should not be sent to.

    http(s) only; a host; a valid port; no whitespace or control characters anywhere (no header
    injection); no user:password@ (which also hides the real host from a reader). With an
    allow-list, the URL's origin (scheme, host, port) must equal an entry's, and its path must
    start with the entry's path: string prefixes would let 'http://a:80' admit 'http://a:8080'."""
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise InvalidRequest("webhook url must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
        httpx.URL(url)
    except (ValueError, httpx.InvalidURL) as exc:
        raise InvalidRequest(f"webhook url is not a valid URL: {exc}") from exc
    if parts.scheme not in ("http", "https"):
        raise InvalidRequest(f"webhook url must use http or https, not {parts.scheme or 'none'!r}")
    if not parts.hostname:
        raise InvalidRequest("webhook url has no host")
    if parts.username is not None or parts.password is not None:
        raise InvalidRequest("webhook url must not carry a user or password; use the secret")
    entries = [e.strip() for e in allowlist.split(",") if e.strip()]
    if entries and not any(_within(parts, port, urlsplit(e)) for e in entries):
        raise InvalidRequest(
            "webhook url is not in the server's allow-list (SPC_WEBHOOK_ALLOWLIST)"
        )


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def _within(url: SplitResult, port: int | None, entry: SplitResult) -> bool:
    return (
        url.scheme == entry.scheme
        and url.hostname == entry.hostname
        and (port or _default_port(url.scheme)) == (entry.port or _default_port(entry.scheme))
        and url.path.startswith(entry.path.rstrip("/"))
        and (not entry.path.rstrip("/") or url.path == entry.path.rstrip("/")
             or url.path[len(entry.path.rstrip("/"))] == "/")
    )


@router.post("", response_model=WebhookPublic, status_code=201)
async def create_webhook(
    body: WebhookCreate, pool: Pool, settings: AppSettings, principal: AdminKey
) -> WebhookPublic:
    """Subscribe a URL; the signing secret is returned once, in this response."""
    check_url(body.url, settings.webhook_allowlist)
    secret = body.secret or webhook_signing.new_secret()
    async with pool.acquire() as conn, conn.transaction():
        row = await webhooks_repo.create_subscription(conn, body.url, secret, list(body.events))
        await audit_repo.record(conn, principal.actor, "webhook.create", f"webhook:{row['id']}",
                                {"url": body.url, "events": list(body.events)})
    return WebhookPublic(**dict(row), secret=secret)


@router.get("", response_model=list[WebhookPublic])
async def list_webhooks(pool: Pool, principal: AdminKey) -> list[WebhookPublic]:
    async with pool.acquire() as conn:
        rows = await webhooks_repo.list_subscriptions(conn)
    return [WebhookPublic(**dict(r)) for r in rows]


@router.delete("/{sub_id:int}", status_code=204)
async def delete_webhook(sub_id: int, pool: Pool, principal: AdminKey) -> None:
    async with pool.acquire() as conn, conn.transaction():
        if not await webhooks_repo.delete_subscription(conn, sub_id):
            raise NotFound(f"no webhook subscription {sub_id}")
        await audit_repo.record(conn, principal.actor, "webhook.delete", f"webhook:{sub_id}")


@router.post("/{sub_id:int}/test", status_code=202)
async def test_webhook(sub_id: int, pool: Pool, worker: Worker, principal: AdminKey) -> dict:
    """Queue one `webhook.test` event to this subscription only, signed and retried like every
    delivery, so its receiver can be checked; the outcome shows in `/webhooks/deliveries`."""
    event_id = f"test-{uuid.uuid4()}"
    payload = {"type": "webhook.test", "timestamp": datetime.now(UTC).isoformat(),
               "data": {"subscription_id": sub_id, "requested_by": principal.actor}}
    async with pool.acquire() as conn, conn.transaction():
        delivery = await webhooks_repo.enqueue_test(conn, sub_id, event_id, payload)
        if delivery is None:
            raise NotFound(f"no webhook subscription {sub_id}")
        await audit_repo.record(conn, principal.actor, "webhook.test", f"webhook:{sub_id}",
                                {"delivery": delivery})
    worker.notify()
    return {"queued": delivery, "event_id": event_id}


@router.get("/deliveries", response_model=list[DeliveryPublic])
async def list_deliveries(
    pool: Pool, principal: AdminKey,
    state: Literal["pending", "delivered", "dead"] | None = None,
    limit: int = Query(100, ge=1, le=10_000),
) -> list[DeliveryPublic]:
    async with pool.acquire() as conn:
        rows = await webhooks_repo.list_deliveries(conn, state, limit)
    return [DeliveryPublic(**dict(r)) for r in rows]


@router.post("/deliveries/{delivery_id:int}/resend", status_code=202)
async def resend(delivery_id: int, pool: Pool, worker: Worker, principal: AdminKey) -> dict:
    """Put a dead-lettered delivery back in the queue (attempts restart from zero)."""
    async with pool.acquire() as conn:
        if not await webhooks_repo.resend(conn, delivery_id):
            raise NotFound(f"no dead-lettered delivery {delivery_id}")
    worker.notify()
    return {"queued": delivery_id}
