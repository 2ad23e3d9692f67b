"""Error responses: every 4xx body is `{"detail": "<one readable message>", "error": ...}`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from server.exceptions import SPCError

MAX_REPORTED = 5


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


def install(app: FastAPI) -> None:
    @app.exception_handler(SPCError)
    async def spc_error(request: Request, exc: SPCError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        detail = describe_errors(exc.errors(), skip=("body",))
        return JSONResponse({"detail": detail, "error": "ValidationError"}, status_code=422)
