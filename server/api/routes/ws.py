"""WebSocket /ws: live points, limits and alarms for the characteristics a client subscribes to.

The first message authenticates and subscribes (browsers cannot set headers on a WebSocket, and
a key in the URL would end up in access logs):
    {"auth": "<api key>", "subscribe": ["bore_diameter", ...]}   ("*" for everything)
Later messages may change the subscription: {"subscribe": [...]}.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from server.api.deps import authenticate
from server.exceptions import SPCError
from server.security import ROLE_GRANTS
from server.services.hub import REVOKED

router = APIRouter(tags=["live"])
AUTH_TIMEOUT_S = 10.0
REAUTH_INTERVAL_S = 30.0
POLICY_VIOLATION = 1008


def parse_subscription(message: dict) -> set[str]:
    keys = message.get("subscribe", [])
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise ValueError("'subscribe' must be a list of characteristic keys")
    return set(keys)


@router.websocket("/ws")
async def live(websocket: WebSocket) -> None:
    await websocket.accept()
    app = websocket.app
    try:
        first = json.loads(await asyncio.wait_for(websocket.receive_text(), AUTH_TIMEOUT_S))
        principal = await authenticate(app.state.pool, f"Bearer {first.get('auth', '')}")
        if principal.role not in ROLE_GRANTS["operator"]:
            raise ValueError(f"the {principal.role} role cannot watch live data")
        keys = parse_subscription(first)
    except (TimeoutError, ValueError, SPCError, AttributeError, WebSocketDisconnect) as exc:
        with contextlib.suppress(Exception):
            detail = str(exc) or "authentication timed out"
            await websocket.send_json({"type": "error", "detail": detail})
            await websocket.close(POLICY_VIOLATION)
        return
    hub = app.state.hub
    sub = hub.connect()
    hub.subscribe(sub, keys)
    await websocket.send_json({"type": "subscribed", "keys": sorted(keys)})

    key = first.get("auth", "")
    sub.key_id = principal.key_id
    checked = time.monotonic()

    async def pump() -> None:
        # A key revoked through the API ends its streams at once (Hub.revoke); one revoked
        # elsewhere (`spc keys revoke`) within REAUTH_INTERVAL_S of the next event.
        nonlocal checked
        while True:
            text = await sub.queue.get()
            if text is REVOKED:
                await websocket.send_text(text)
                await websocket.close(POLICY_VIOLATION)
                return
            if time.monotonic() - checked > REAUTH_INTERVAL_S:
                try:
                    await authenticate(app.state.pool, f"Bearer {key}")
                except SPCError as exc:
                    await websocket.send_json({"type": "error", "detail": str(exc)})
                    await websocket.close(POLICY_VIOLATION)
                    return
                checked = time.monotonic()
            overflow = sub.overflow_message()
            if overflow is not None:
                await websocket.send_text(overflow)
            await websocket.send_text(text)

    async def listen() -> None:
        while True:
            message = json.loads(await websocket.receive_text())
            hub.subscribe(sub, parse_subscription(message))
            await websocket.send_json({"type": "subscribed", "keys": sorted(sub.keys)})

    tasks = [asyncio.create_task(pump()), asyncio.create_task(listen())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        hub.disconnect(sub)
        with contextlib.suppress(Exception):
            await websocket.close()
