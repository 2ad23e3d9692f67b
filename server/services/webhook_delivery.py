"""The webhook delivery worker: drains the outbox with retries, backoff and a dead-letter state.

Deliveries are claimed with `FOR UPDATE SKIP LOCKED`, so several server processes can run workers
against one database. A delivery is retried after `base * 2**(attempt-1)` seconds (capped, with
jitter) until `max_attempts`, then marked `dead`; `POST /api/v1/webhooks/deliveries/{id}/resend`
puts it back in the queue. Each event keeps its `webhook-id` across retries, so receivers
deduplicate by it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random

import asyncpg
import httpx

from server.repository import webhooks as webhooks_repo
from server.services import webhook_signing
from server.services.periodic import DATABASE_ERRORS

log = logging.getLogger("spc.webhooks")
BATCH = 20


class DeliveryWorker:
    def __init__(
        self, pool: asyncpg.Pool, *, max_attempts: int, backoff_base_s: float,
        backoff_max_s: float, timeout_s: float,
    ) -> None:
        self.pool = pool
        self.max_attempts = max_attempts
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self.timeout_s = timeout_s
        self.wakeup = asyncio.Event()
        self.delivered = 0
        self.failed_attempts = 0
        self.dead = 0
        self.running = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="webhook-delivery")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def notify(self) -> None:
        self.wakeup.set()

    def retry_delay(self, attempts_so_far: int) -> float:
        delay = min(self.backoff_max_s, self.backoff_base_s * 2 ** attempts_so_far)
        return delay * random.uniform(0.8, 1.2)

    async def _run(self) -> None:
        self.running = True
        async with httpx.AsyncClient(timeout=self.timeout_s, follow_redirects=False) as client:
            while True:
                try:
                    worked = await self.deliver_due(client)
                except DATABASE_ERRORS as exc:
                    log.warning("webhook worker: database unavailable (%s); retrying", exc)
                    worked = 0
                    await asyncio.sleep(1.0)
                if worked:
                    continue
                self.wakeup.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wakeup.wait(), timeout=0.5)

    async def deliver_due(self, client: httpx.AsyncClient) -> int:
        async with self.pool.acquire() as conn, conn.transaction():
            due = await webhooks_repo.claim_due(conn, BATCH)
            if not due:
                return 0
            results = await asyncio.gather(*(self._send(client, d) for d in due))
            for delivery, error in zip(due, results, strict=True):
                if error is None:
                    await webhooks_repo.mark_delivered(conn, delivery["id"])
                    self.delivered += 1
                    continue
                self.failed_attempts += 1
                attempts = delivery["attempts"] + 1
                retry = None if attempts >= self.max_attempts else self.retry_delay(attempts - 1)
                if retry is None:
                    self.dead += 1
                    log.error("webhook %s to %s dead after %d attempts: %s",
                              delivery["event_id"], delivery["url"], attempts, error)
                await webhooks_repo.mark_failed(conn, delivery["id"], error, retry)
            return len(due)

    async def _send(self, client: httpx.AsyncClient, delivery: asyncpg.Record) -> str | None:
        body = delivery["payload"].encode()
        headers = webhook_signing.headers(delivery["secret"], delivery["event_id"], body)
        try:
            response = await client.post(delivery["url"], content=body, headers=headers)
        except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
            # InvalidURL is not an HTTPError: a subscription stored before URLs were checked
            # strictly must fail its own deliveries, not stop everyone's.
            return f"{type(exc).__name__}: {exc}"
        if 200 <= response.status_code < 300:
            return None
        return f"HTTP {response.status_code}: {response.text[:200]}"
