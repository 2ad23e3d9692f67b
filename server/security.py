"""API keys: generation, hashing and the role model.

A key reads `spc_<prefix>_<secret>`. The prefix (public, indexed) finds the row; the secret's
SHA-256 is compared in constant time. The secret carries 256 bits of randomness, so a fast hash is
not brute-forceable here (unlike passwords, which need a slow hash); the plain key is shown once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Literal

Role = Literal["agent", "operator", "engineer", "admin"]
ROLES: tuple[Role, ...] = ("agent", "operator", "engineer", "admin")

# Which roles satisfy a route's requirement. The agent role is deliberately not part of the
# human hierarchy: an agent key can ingest and heartbeat, nothing else.
ROLE_GRANTS: dict[str, frozenset[str]] = {
    "agent": frozenset({"agent", "admin"}),
    "operator": frozenset({"operator", "engineer", "admin"}),
    "engineer": frozenset({"engineer", "admin"}),
    "admin": frozenset({"admin"}),
}


def generate_key() -> tuple[str, str, str]:
    """Return (plain key, prefix, hash)."""
    prefix = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    return f"spc_{prefix}_{secret}", prefix, hash_secret(secret)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def split_key(key: str) -> tuple[str, str] | None:
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != "spc" or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)
