"""GET /health (no key needed: load balancers and systemd probe it) and GET /metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from server.api.deps import Pool
from server.core import db
from server.repository import webhooks as webhooks_repo

router = APIRouter(tags=["operations"])


@router.get("/health", responses={503: {"description": "the database is unreachable"}})
async def health(request: Request, response: Response, pool: Pool) -> dict:
    """200 when the server can use its database, 503 (same body) when it cannot, so load
    balancers, compose and systemd probes can go by the status code."""
    state = request.app.state
    try:
        async with pool.acquire() as conn:
            await conn.fetchval("SELECT 1")
            migrations = await db.migration_status(conn)
        database = "ok"
    except Exception as exc:  # health must report, not fail
        database, migrations = f"error: {exc}", None
    if database != "ok":
        response.status_code = 503
    return {
        "status": "ok" if database == "ok" else "degraded",
        "database": database,
        "storage": {
            "mode": state.storage.name,
            "timescaledb_version": state.storage.timescaledb_version,
            "license": state.storage.license,
            "postgres_version": state.storage.postgres_version,
        },
        "migrations": migrations,
        "webhook_worker": "running" if state.worker.running else "stopped",
        "ingest_workers": state.ingest_workers.state() if state.ingest_workers else [],
        "websocket_clients": len(state.hub.subscribers),
    }


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, pool: Pool) -> Response:
    """Prometheus text format."""
    state = request.app.state
    workers = state.ingest_workers
    async with pool.acquire() as conn:
        queue = await webhooks_repo.queue_depth(conn)
        open_alarms = await conn.fetchval("SELECT count(*) FROM alarms WHERE state = 'open'")
    lines = [
        "# TYPE spc_samples_ingested_total counter",
        f"spc_samples_ingested_total {state.metrics['samples_ingested']}",
        "# TYPE spc_ingest_batches_total counter",
        f"spc_ingest_batches_total {state.metrics['batches']}",
        "# TYPE spc_ingest_seconds_total counter",
        f"spc_ingest_seconds_total {state.metrics['ingest_seconds']:.6f}",
        "# HELP spc_evaluation_lag_seconds newest sample of the last batch to its evaluation",
        "# TYPE spc_evaluation_lag_seconds gauge",
        f"spc_evaluation_lag_seconds {state.metrics['evaluation_lag_seconds']:.6f}",
        "# TYPE spc_open_alarms gauge",
        f"spc_open_alarms {open_alarms}",
        "# TYPE spc_webhook_queue gauge",
        *(f'spc_webhook_queue{{state="{s}"}} {queue.get(s, 0)}'
          for s in ("pending", "delivered", "dead")),
        "# TYPE spc_webhook_failed_attempts_total counter",
        f"spc_webhook_failed_attempts_total {state.worker.failed_attempts}",
        "# HELP spc_ingest_workers_running ingest worker processes up (of SPC_INGEST_WORKERS)",
        "# TYPE spc_ingest_workers_running gauge",
        f"spc_ingest_workers_running {len(workers.pids()) if workers else 0}",
        "# TYPE spc_ingest_worker_restarts_total counter",
        f"spc_ingest_worker_restarts_total {workers.restarts if workers else 0}",
        "# TYPE spc_websocket_clients gauge",
        f"spc_websocket_clients {len(state.hub.subscribers)}",
        "# TYPE spc_websocket_dropped_total counter",
        f"spc_websocket_dropped_total {state.hub.dropped}",
    ]
    return Response("\n".join(lines) + "\n", media_type="text/plain; version=0.0.4")
