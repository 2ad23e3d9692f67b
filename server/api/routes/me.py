"""GET /me: who the presented key is, so a client can show only the controls its role allows."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from server.api.deps import OperatorKey

router = APIRouter(tags=["keys"])


class MePublic(BaseModel):
    role: str
    name: str
    scope: str | None


@router.get("/me", response_model=MePublic)
async def me(principal: OperatorKey) -> MePublic:
    """The role, name and scope of the key making the request (any key that may read)."""
    return MePublic(role=principal.role, name=principal.name, scope=principal.scope)
