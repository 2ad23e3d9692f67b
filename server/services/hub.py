"""Fan-out of live events to WebSocket clients without ever blocking ingest.

Subscribers are indexed by characteristic key, so publishing a point costs the number of clients
watching that characteristic, not the number connected; each event is encoded to JSON once,
whoever receives it. Each client has a bounded queue: publishing is `put_nowait`, and a client too
slow to drain its queue loses its oldest messages (counted, and told with an
`{"type": "overflow", "dropped": n}` message) instead of slowing the ingest path that publishes.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

EVERYTHING = "*"
# Sent in place of events when the client's key is revoked; compared by identity.
REVOKED = json.dumps({"type": "error", "detail": "the API key was revoked"})


@dataclass(eq=False)
class Subscriber:
    queue: asyncio.Queue[str]
    keys: frozenset[str] = field(default_factory=frozenset)  # characteristic keys, or {"*"}
    dropped: int = 0
    reported: int = 0  # drops already told to the client
    key_id: int | None = None  # the API key the client logged in with

    def overflow_message(self) -> str | None:
        if self.dropped == self.reported:
            return None
        lost, self.reported = self.dropped - self.reported, self.dropped
        return json.dumps({"type": "overflow", "dropped": lost})


class Hub:
    def __init__(self, queue_size: int = 1000) -> None:
        self.queue_size = queue_size
        self.subscribers: set[Subscriber] = set()
        self._by_key: dict[str, set[Subscriber]] = {}
        self.published = 0
        self.dropped = 0

    def connect(self) -> Subscriber:
        sub = Subscriber(asyncio.Queue(self.queue_size))
        self.subscribers.add(sub)
        return sub

    def subscribe(self, sub: Subscriber, keys: set[str]) -> None:
        """Replace what `sub` watches."""
        self._unindex(sub)
        sub.keys = frozenset(keys)
        for key in sub.keys:
            self._by_key.setdefault(key, set()).add(sub)

    def disconnect(self, sub: Subscriber) -> None:
        self._unindex(sub)
        self.subscribers.discard(sub)

    def _unindex(self, sub: Subscriber) -> None:
        for key in sub.keys:
            watchers = self._by_key.get(key)
            if watchers is not None:
                watchers.discard(sub)
                if not watchers:
                    del self._by_key[key]

    def watches(self, key: str) -> bool:
        """Whether any client would receive an event about characteristic `key`, so ingest
        builds point events only for characteristics someone watches."""
        return key in self._by_key or EVERYTHING in self._by_key

    def watched_keys(self) -> frozenset[str]:
        """The characteristic keys some client watches ("*" among them: every one), for an
        ingest worker process, which cannot ask `watches`."""
        return frozenset(self._by_key)

    def revoke(self, key_id: int) -> int:
        """End the streams of clients logged in with a key just revoked; how many."""
        ended = [sub for sub in self.subscribers if sub.key_id == key_id]
        for sub in ended:
            self._put(sub, REVOKED, count=False)
        return len(ended)

    def publish(self, event: dict[str, Any]) -> None:
        key = event.get("characteristic")
        self.published += 1
        if key is None:  # about the collection chain, not one characteristic: for everyone
            targets = self.subscribers
        else:
            targets = self._by_key.get(EVERYTHING, set()) | self._by_key.get(key, set())
        if not targets:
            return
        text = json.dumps(event, default=str)
        for sub in targets:
            self._put(sub, text)

    def _put(self, sub: Subscriber, text: str, count: bool = True) -> None:
        if sub.queue.full():
            sub.queue.get_nowait()
            if count:
                sub.dropped += 1
                self.dropped += 1
        sub.queue.put_nowait(text)
