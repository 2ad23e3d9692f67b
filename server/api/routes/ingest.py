"""POST /ingest (samples from agents) and POST /agents/heartbeat."""

from __future__ import annotations

import gzip
import json
import time
import zlib
from datetime import UTC, datetime

from fastapi import APIRouter, Header, Request

from server.api.deps import AgentKey, AppSettings, IngestPool, LiveHub, Pool, Worker
from server.exceptions import InvalidRequest, PayloadTooLarge
from server.models import HeartbeatCreate, IngestRequest, IngestResult
from server.repository import keys as keys_repo
from server.services import chain_health
from server.services import ingest as ingest_service

router = APIRouter(tags=["ingest"])


async def read_body(request: Request, max_bytes: int) -> bytes:
    raw = await request.body()
    if len(raw) > max_bytes:
        raise PayloadTooLarge(f"request body is {len(raw)} bytes; the limit is {max_bytes}")
    if request.headers.get("content-encoding", "").lower() == "gzip":
        try:
            # Bounded decompression: a small gzip bomb must not exhaust memory.
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            raw = d.decompress(raw, max_bytes + 1)
        except (zlib.error, gzip.BadGzipFile) as exc:
            raise InvalidRequest(f"body is not valid gzip: {exc}") from exc
        if len(raw) > max_bytes:
            raise PayloadTooLarge(f"decompressed body exceeds {max_bytes} bytes")
    return raw


def inline_schema(model: type[IngestRequest]) -> dict:
    """The model's JSON schema with its $defs inlined, for a hand-read request body."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: object) -> object:
        if isinstance(node, dict):
            if "$ref" in node:
                return resolve(defs[node["$ref"].rsplit("/", 1)[-1]])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return resolve(schema)  # type: ignore[return-value]


# The body is read by hand (gzip, bounded size), so its schema is declared here for OpenAPI.
INGEST_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": inline_schema(IngestRequest)}}}}


@router.post("/ingest", response_model=IngestResult, openapi_extra=INGEST_BODY)
async def ingest(
    request: Request, pool: Pool, settings: AppSettings, hub: LiveHub, worker: Worker,
    principal: AgentKey, workers: IngestPool,
    idempotency_key: str | None = Header(None, max_length=200),
) -> IngestResult:
    """Store a batch of samples and evaluate SPC on them: all or nothing (see the contract)."""
    started = time.perf_counter()
    raw = await read_body(request, settings.max_body_bytes)
    scope = principal.scope if principal.role == "agent" else None
    if workers is not None:  # parsed, stored and evaluated in an ingest worker process
        outcome = await workers.ingest(raw, idempotency_key, scope, hub.watched_keys())
    else:
        outcome = await ingest_service.ingest_body(
            pool, raw, idempotency_key, settings.max_batch_samples, settings.max_future_skew_s,
            scope=scope,
            watched=hub.watches,  # point events only for characteristics someone watches
        )
    result, events, newest = outcome
    metrics = request.app.state.metrics
    metrics["samples_ingested"] += result.accepted
    metrics["batches"] += 1
    metrics["ingest_seconds"] += time.perf_counter() - started
    if newest is not None:
        # how far behind the process SPC is: from the newest sample's time to its evaluation
        metrics["evaluation_lag_seconds"] = (datetime.now(UTC) - newest).total_seconds()
    for event in events:
        hub.publish(event)
    # webhook events are queued (in the same transaction) for opened alarms only
    if any(e["type"] == "alarm" and e["event"] == "alarm.opened" for e in events):
        worker.notify()
    return result


@router.post("/agents/heartbeat", status_code=204)
async def heartbeat(
    body: HeartbeatCreate, pool: Pool, hub: LiveHub, worker: Worker, principal: AgentKey
) -> None:
    """Record an agent's health: buffer depth, dropped samples and the state of each source.

    A source in any state but `connected` opens a source-down alarm; recovery closes it.
    """
    async with pool.acquire() as conn, conn.transaction():
        await keys_repo.upsert_agent(
            conn, body.agent, body.version, body.buffer_depth, body.dropped,
            json.dumps([s.model_dump() for s in body.sources]),
        )
        events = await chain_health.on_heartbeat(conn, body)
    for event in events:
        hub.publish(event)
    if events:
        worker.notify()
