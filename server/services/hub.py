"""Fan-out of live events to WebSocket clients without ever blocking ingest.

Each client has a bounded queue. Publishing is `put_nowait`: a client too slow to drain its queue
loses its oldest messages (counted, and told with a `{"type": "overflow"}` message) instead of
slowing the ingest path that publishes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any


@dataclass(eq=False)
class Subscriber:
    queue: asyncio.Queue[dict[str, Any]]
    keys: set[str] = field(default_factory=set)  # characteristic keys, or {"*"}
    dropped: int = 0
    key_id: int | None = None  # the API key the client logged in with

    def wants(self, key: str | None) -> bool:
        return "*" in self.keys or key is None or key in self.keys


REVOKED: dict[str, Any] = {"type": "error", "detail": "the API key was revoked"}


class Hub:
    def __init__(self, queue_size: int = 1000) -> None:
        self.queue_size = queue_size
        self.subscribers: set[Subscriber] = set()
        self.published = 0
        self.dropped = 0

    def connect(self) -> Subscriber:
        sub = Subscriber(asyncio.Queue(self.queue_size))
        self.subscribers.add(sub)
        return sub

    def disconnect(self, sub: Subscriber) -> None:
        self.subscribers.discard(sub)

    def revoke(self, key_id: int) -> int:
        """End the streams of clients logged in with a key just revoked; how many."""
        ended = 0
        for sub in self.subscribers:
            if sub.key_id == key_id:
                if sub.queue.full():
                    sub.queue.get_nowait()
                sub.queue.put_nowait(REVOKED)
                ended += 1
        return ended

    def publish(self, event: dict[str, Any]) -> None:
        key = event.get("characteristic")
        self.published += 1
        for sub in self.subscribers:
            if not sub.wants(key):
                continue
            if sub.queue.full():
                sub.queue.get_nowait()
                sub.dropped += 1
                self.dropped += 1
            sub.queue.put_nowait(event)
