"""Standard Webhooks signatures (https://www.standardwebhooks.com/).

The signed content is `"{webhook-id}.{webhook-timestamp}.{body}"`; the signature is the base64 of
its HMAC-SHA256 under the secret, sent as `webhook-signature: v1,<signature>`. Secrets are
`whsec_` followed by base64 of the key bytes. `verify` is what a receiver runs: it also rejects
timestamps outside a tolerance, which defeats replays of captured deliveries.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

SECRET_PREFIX = "whsec_"
DEFAULT_TOLERANCE_S = 300


class SignatureError(ValueError):
    """A delivery's signature or timestamp does not verify."""


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _key(secret: str) -> bytes:
    if secret.startswith(SECRET_PREFIX):
        return base64.b64decode(secret[len(SECRET_PREFIX):])
    return secret.encode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secret: str, msg_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(secret, msg_id, ts, body),
        "content-type": "application/json",
    }


def verify(
    secret: str, received: dict[str, str], body: bytes,
    tolerance_s: int = DEFAULT_TOLERANCE_S, now: float | None = None,
) -> None:
    """Raise SignatureError unless `received` headers sign `body` under `secret`."""
    lower = {k.lower(): v for k, v in received.items()}
    try:
        msg_id = lower["webhook-id"]
        ts = int(lower["webhook-timestamp"])
        signatures = lower["webhook-signature"].split()
    except (KeyError, ValueError) as exc:
        raise SignatureError(f"missing or malformed webhook header: {exc}") from exc
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance_s:
        raise SignatureError(f"timestamp {ts} is outside the {tolerance_s}s tolerance")
    expected = sign(secret, msg_id, ts, body)
    if not any(hmac.compare_digest(expected, s) for s in signatures):
        raise SignatureError("no signature matches")
