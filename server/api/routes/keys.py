"""API keys (admin only). The plain key is returned once, at creation."""

from __future__ import annotations

from fastapi import APIRouter

from server.api.deps import AdminKey, LiveHub, Pool
from server.exceptions import NotFound
from server.models import ApiKeyCreate, ApiKeyPublic
from server.repository import audit as audit_repo
from server.repository import keys as keys_repo
from server.security import generate_key

router = APIRouter(prefix="/keys", tags=["keys"])


@router.post("", response_model=ApiKeyPublic, status_code=201)
async def create_key(body: ApiKeyCreate, pool: Pool, principal: AdminKey) -> ApiKeyPublic:
    plain, prefix, key_hash = generate_key()
    async with pool.acquire() as conn, conn.transaction():
        row = await keys_repo.create(conn, prefix, key_hash, body.role, body.name, body.scope)
        await audit_repo.record(conn, principal.actor, "key.create", f"key:{row['id']}",
                                {"prefix": prefix, "role": body.role, "scope": body.scope})
    return ApiKeyPublic(**dict(row), key=plain)


@router.get("", response_model=list[ApiKeyPublic])
async def list_keys(pool: Pool, principal: AdminKey) -> list[ApiKeyPublic]:
    async with pool.acquire() as conn:
        return [ApiKeyPublic(**dict(r)) for r in await keys_repo.list_active(conn)]


@router.delete("/{key_id:int}", status_code=204)
async def revoke_key(key_id: int, pool: Pool, hub: LiveHub, principal: AdminKey) -> None:
    async with pool.acquire() as conn, conn.transaction():
        if not await keys_repo.revoke(conn, key_id):
            raise NotFound(f"no active key {key_id}")
        await audit_repo.record(conn, principal.actor, "key.revoke", f"key:{key_id}")
    hub.revoke(key_id)  # its open WebSocket streams end now
