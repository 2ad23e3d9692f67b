"""Error responses: every 4xx body is `{"detail": "<one readable message>", "error": ...}`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from server.exceptions import SPCError

MAX_REPORTED = 5
RETRY_AFTER_S = 5
# The database going away mid-request: a 503, not a 500 with a traceback.
DATABASE_DOWN = (
    ConnectionError, asyncpg.CannotConnectNowError, asyncpg.ConnectionDoesNotExistError,
    asyncpg.InterfaceError, asyncpg.AdminShutdownError,
)


class ErrorBody(BaseModel):
    """Every error response."""

    detail: str
    error: str
    sample: int | None = None  # ingest: the index of the sample that was refused


_MEANING = {
    400: "the request says something wrong",
    401: "no key, or an unknown or revoked key",
    403: "the key's role or scope does not allow this",
    404: "the named thing does not exist",
    409: "it exists already, or its state forbids the change",
    413: "the batch or body is too large",
    422: "the request does not match the schema",
}
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": meaning} for code, meaning in _MEANING.items()
}


def describe_errors(errors: Sequence[dict[str, Any]], skip: tuple[str, ...] = ()) -> str:
    """pydantic errors as `samples[2].value: Input should be a valid number; ...`."""
    parts = []
    for err in errors[:MAX_REPORTED]:
        path = ""
        for loc in err["loc"]:
            if loc in skip and not path:
                continue
            path += f"[{loc}]" if isinstance(loc, int) else (f".{loc}" if path else str(loc))
        parts.append(f"{path or 'body'}: {err['msg']}")
    more = len(errors) - MAX_REPORTED
    return "; ".join(parts) + (f" (and {more} more)" if more > 0 else "")


def allowed_methods(request: Request) -> list[str]:
    """The methods of the most specific route template matching the path.

    Starlette answers 405 with the methods of the first route whose path matched, but a path
    can match several routes (GET and POST /webhooks are two routes; /webhooks/deliveries also
    matches /webhooks/{id}); a literal template beats one with parameters."""
    path = request.url.path
    candidates: dict[str, set[str]] = {}
    for route in request.app.routes:
        regex = getattr(route, "path_regex", None)
        methods = getattr(route, "methods", None)
        if regex is not None and methods and regex.match(path):
            candidates.setdefault(route.path, set()).update(methods)
    if not candidates:
        return []
    best = min(candidates, key=lambda template: template.count("{"))
    return sorted(candidates[best])


def install(app: FastAPI) -> None:
    @app.exception_handler(SPCError)
    async def spc_error(request: Request, exc: SPCError) -> JSONResponse:
        headers = {"Retry-After": str(RETRY_AFTER_S)} if exc.status_code == 503 else None
        return JSONResponse(exc.body(), status_code=exc.status_code, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Framework errors (unparsable JSON, unknown path, wrong method) in the same shape,
        # keeping their headers (e.g. Allow on a 405).
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(request))
        return JSONResponse({"detail": str(exc.detail), "error": "HTTPError"},
                            status_code=exc.status_code, headers=headers)

    async def database_unavailable(request: Request, exc: Exception) -> JSONResponse:
        # transient: agents keep their batch and retry; nothing was written
        return JSONResponse(
            {"detail": "the database is unavailable; retry later", "error": "Unavailable"},
            status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)},
        )

    for error in DATABASE_DOWN:
        app.add_exception_handler(error, database_unavailable)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = describe_errors(exc.errors(), skip=("body",))
        return JSONResponse({"detail": detail, "error": "ValidationError"}, status_code=422)
