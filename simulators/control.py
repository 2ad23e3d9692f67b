"""The simulator's control interface: a small HTTP/1.1 JSON API on asyncio streams.

    GET    /state          current values, connection and disturbances
    GET    /disturbances   the registered disturbances
    POST   /disturbances   {"machine", "variable", "kind", "magnitude", ...} -> 201 {"id", ...}
    DELETE /disturbances   clear all (scheduled and injected) -> {"cleared": n}
    DELETE /disturbances/<id>  remove one -> its description
    GET    /history?variable=NAME[&machine=M][&limit=N]   the latest samples (up to 2000)
    GET    /map            the Modbus register map as text

Stdlib only: this is a test and demo hook, not a product API, and must not pull a web framework
into an edge install. Bad requests get a 4xx with {"error": "..."} naming what is wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import urllib.parse
from http import HTTPStatus

from pydantic import ValidationError

from simulators.config import ConfigError, DisturbanceSpec
from simulators.line import LineSimulation
from simulators.modbus_map import format_map

log = logging.getLogger(__name__)
MAX_BODY = 64 * 1024


class HttpError(Exception):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _validation_message(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "body"
        msg = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
        parts.append(f"{where}: {msg}")
    return "; ".join(parts)


class ControlServer:
    def __init__(self, line: LineSimulation, host: str, port: int) -> None:
        self.line = line
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            status, body, ctype = await self._respond(reader)
        except HttpError as exc:
            status, body, ctype = exc.status, json.dumps({"error": exc.message}), "application/json"
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        except Exception as exc:  # keep serving; report the bug to the caller and the log
            log.exception("control request failed")
            status = HTTPStatus.INTERNAL_SERVER_ERROR
            body, ctype = json.dumps({"error": f"internal error: {exc}"}), "application/json"
        data = body.encode()
        head = (
            f"HTTP/1.1 {status.value} {status.phrase}\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
        )
        with contextlib.suppress(ConnectionError):
            writer.write(head.encode() + data)
            await writer.drain()
        writer.close()

    async def _respond(self, reader: asyncio.StreamReader) -> tuple[HTTPStatus, str, str]:
        request_line = (await reader.readline()).decode("latin-1").strip()
        parts = request_line.split()
        if len(parts) != 3:
            raise HttpError(HTTPStatus.BAD_REQUEST, f"malformed request line {request_line!r}")
        method, target, _ = parts
        length = 0
        while True:
            line = (await reader.readline()).decode("latin-1")
            if line in ("\r\n", "\n", ""):
                break
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                try:
                    length = int(value.strip())
                except ValueError:
                    raise HttpError(HTTPStatus.BAD_REQUEST, "bad Content-Length") from None
        if length > MAX_BODY:
            raise HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body over {MAX_BODY} bytes")
        body = await reader.readexactly(length) if length else b""
        path, _, query = target.partition("?")
        params = urllib.parse.parse_qs(query)
        return await self._route(method, path.rstrip("/") or "/", params, body)

    async def _route(
        self, method: str, path: str, query: dict[str, list[str]], body: bytes
    ) -> tuple[HTTPStatus, str, str]:
        if path.startswith("/disturbances/"):
            return await self._one_disturbance(method, path.removeprefix("/disturbances/"))
        routes = {
            "/state": {"GET"},
            "/disturbances": {"GET", "POST", "DELETE"},
            "/map": {"GET"},
            "/history": {"GET"},
        }
        if path not in routes:
            raise HttpError(HTTPStatus.NOT_FOUND, f"no such path {path!r}; try {sorted(routes)}")
        if method not in routes[path]:
            raise HttpError(
                HTTPStatus.METHOD_NOT_ALLOWED,
                f"{method} not allowed on {path}; use {sorted(routes[path])}",
            )
        if path == "/state":
            return HTTPStatus.OK, json.dumps(self.line.state()), "application/json"
        if path == "/history":
            return HTTPStatus.OK, json.dumps(self._history(query)), "application/json"
        if path == "/map":
            return HTTPStatus.OK, format_map(self.line.config), "text/plain; charset=utf-8"
        if method == "GET":
            described = [d.describe() for d in self.line.disturbances()]
            return HTTPStatus.OK, json.dumps({"disturbances": described}), "application/json"
        if method == "DELETE":
            cleared = await self.line.clear_disturbances()
            return HTTPStatus.OK, json.dumps({"cleared": cleared}), "application/json"
        return await self._inject(body)

    def _history(self, query: dict[str, list[str]]) -> dict[str, object]:
        """The most recent samples of one variable: ?variable=NAME[&machine=M][&limit=N]."""
        q = {k: v[-1] for k, v in query.items()}
        unknown = set(q) - {"machine", "variable", "limit"}
        if unknown:
            raise HttpError(HTTPStatus.BAD_REQUEST,
                            f"unknown query parameter(s) {sorted(unknown)}; use machine, variable, "
                            f"limit")
        if "variable" not in q:
            raise HttpError(HTTPStatus.BAD_REQUEST, "give ?variable=NAME (and machine=M)")
        machines = self.line.config.machines
        machine = q.get("machine") or (machines[0].name if len(machines) == 1 else None)
        process = self.line.processes.get((machine or "", q["variable"]))
        if process is None:
            known = [f"{m}.{v}" for m, v in self.line.processes]
            raise HttpError(HTTPStatus.NOT_FOUND,
                            f"no variable {q['variable']!r} on machine {machine!r}; known: {known}")
        try:
            limit = int(q.get("limit", "100"))
        except ValueError:
            raise HttpError(HTTPStatus.BAD_REQUEST, "limit must be an integer") from None
        if limit < 1:
            raise HttpError(HTTPStatus.BAD_REQUEST, "limit must be >= 1")
        samples = list(process.history)[-limit:]
        return {
            "machine": machine,
            "variable": q["variable"],
            "samples": [
                {"index": s.index, "ts": self.line.clock.timestamp(s.t).isoformat(),
                 "value": s.value, "quality": s.quality}
                for s in samples
            ],
        }

    async def _one_disturbance(self, method: str, ident: str) -> tuple[HTTPStatus, str, str]:
        if method != "DELETE":
            raise HttpError(HTTPStatus.METHOD_NOT_ALLOWED,
                            f"{method} not allowed on /disturbances/<id>; use DELETE")
        if not ident.isdigit():
            raise HttpError(HTTPStatus.NOT_FOUND, f"disturbance id must be a number, not {ident!r}")
        removed = await self.line.remove_disturbance(int(ident))
        if removed is None:
            known = [d.id for d in self.line.disturbances()]
            raise HttpError(HTTPStatus.NOT_FOUND, f"no disturbance {ident}; registered: {known}")
        return HTTPStatus.OK, json.dumps(removed.describe()), "application/json"

    async def _inject(self, body: bytes) -> tuple[HTTPStatus, str, str]:
        try:
            payload = json.loads(body or b"null")
        except json.JSONDecodeError as exc:
            raise HttpError(HTTPStatus.BAD_REQUEST, f"body is not JSON: {exc}") from None
        if not isinstance(payload, dict):
            raise HttpError(
                HTTPStatus.BAD_REQUEST,
                'body must be a JSON object like {"machine": "CNC1", "variable": '
                '"bore_diameter", "kind": "shift", "magnitude": 3.0}',
            )
        try:
            spec = DisturbanceSpec.model_validate(payload)
        except ValidationError as exc:
            raise HttpError(HTTPStatus.UNPROCESSABLE_ENTITY, _validation_message(exc)) from None
        try:
            disturbance = self.line.add_disturbance(spec, origin="control")
        except ConfigError as exc:
            raise HttpError(HTTPStatus.UNPROCESSABLE_ENTITY, str(exc)) from None
        log.info("injected %s", disturbance.describe())
        return HTTPStatus.CREATED, json.dumps(disturbance.describe()), "application/json"
