"""Dependencies shared by the routes, as `Annotated` aliases."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import asyncpg
from fastapi import Depends, Request

from server.core.config import Settings
from server.exceptions import AuthenticationRequired, PermissionDenied
from server.repository import keys as keys_repo
from server.security import ROLE_GRANTS, secret_matches, split_key
from server.services.hub import Hub
from server.services.ingest_workers import IngestWorkers
from server.services.webhook_delivery import DeliveryWorker


@dataclass(frozen=True)
class Principal:
    key_id: int
    role: str
    name: str
    scope: str | None

    @property
    def actor(self) -> str:
        return f"key:{self.name or self.key_id}"


async def get_pool(request: Request) -> asyncpg.Pool:
    return request.app.state.pool


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_hub(request: Request) -> Hub:
    return request.app.state.hub


async def get_worker(request: Request) -> DeliveryWorker:
    return request.app.state.worker


async def get_ingest_workers(request: Request) -> IngestWorkers | None:
    return request.app.state.ingest_workers


Pool = Annotated[asyncpg.Pool, Depends(get_pool)]
IngestPool = Annotated[IngestWorkers | None, Depends(get_ingest_workers)]
AppSettings = Annotated[Settings, Depends(get_settings)]
LiveHub = Annotated[Hub, Depends(get_hub)]
Worker = Annotated[DeliveryWorker, Depends(get_worker)]


async def authenticate(pool: asyncpg.Pool, authorization: str | None) -> Principal:
    if not authorization:
        raise AuthenticationRequired("missing API key: send 'Authorization: Bearer <key>'")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationRequired("malformed Authorization header: use 'Bearer <key>'")
    parts = split_key(token.strip())
    if parts is None:
        raise AuthenticationRequired("malformed API key")
    async with pool.acquire() as conn:
        row = await keys_repo.by_prefix(conn, parts[0])
    if row is None or not secret_matches(parts[1], row["key_hash"]):
        raise AuthenticationRequired("unknown or revoked API key")
    return Principal(key_id=row["id"], role=row["role"], name=row["name"], scope=row["scope"])


def require(role: str):
    granted = ROLE_GRANTS[role]

    async def dependency(request: Request, pool: Pool) -> Principal:
        principal = await authenticate(pool, request.headers.get("authorization"))
        if principal.role not in granted:
            raise PermissionDenied(
                f"this needs the {role} role; the key has the {principal.role} role"
            )
        return principal

    return Depends(dependency)


AgentKey = Annotated[Principal, require("agent")]
OperatorKey = Annotated[Principal, require("operator")]
EngineerKey = Annotated[Principal, require("engineer")]
AdminKey = Annotated[Principal, require("admin")]
