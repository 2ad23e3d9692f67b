"""The FastAPI application: routes under /api/v1, the dashboard at /, and the background worker."""

from __future__ import annotations

import gc
import logging
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from server.api import errors
from server.api.routes import (
    alarms,
    analysis,
    audit,
    characteristics,
    charts,
    health,
    hierarchy,
    ingest,
    keys,
    me,
    webhooks,
    ws,
)
from server.core import db
from server.core.config import Settings
from server.services.chain_health import silence_watch
from server.services.hub import Hub
from server.services.ingest_workers import IngestWorkers
from server.services.maintenance import maintenance_job
from server.services.webhook_delivery import DeliveryWorker

log = logging.getLogger("spc.server")
API_PREFIX = "/api/v1"
DEFAULT_DASHBOARD = Path(__file__).resolve().parent.parent / "dashboards" / "web"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings.from_env()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await db.migrate(settings.database_url, settings.timescaledb)
        pool = await db.create_pool(settings.database_url, settings.pool_min_size,
                                    settings.pool_max_size)
        async with pool.acquire() as conn:
            app.state.storage = await db.detect_storage(conn)
        if settings.ingest_workers:  # first: nothing else is running yet if they cannot start
            app.state.ingest_workers = IngestWorkers(settings, settings.ingest_workers)
            try:
                await app.state.ingest_workers.start()
            except BaseException:
                await pool.close()
                raise
        log.info("storage mode: %s", app.state.storage.name)
        app.state.pool = pool
        app.state.worker = DeliveryWorker(
            pool, max_attempts=settings.webhook_max_attempts,
            backoff_base_s=settings.webhook_backoff_base_s,
            backoff_max_s=settings.webhook_backoff_max_s, timeout_s=settings.webhook_timeout_s,
        )
        app.state.worker.start()
        app.state.watch = silence_watch(
            pool, app.state.hub, app.state.worker.notify,
            after_s=settings.agent_silent_after_s, interval_s=settings.watchdog_interval_s,
        )
        app.state.watch.start()
        app.state.maintenance = maintenance_job(
            pool, app.state.storage, retention_days=settings.retention_days,
            interval_s=settings.maintenance_interval_s,
        )
        app.state.maintenance.start()
        # Everything built so far (modules, pydantic validators, OpenAPI schema, ~120k objects)
        # lives as long as the process: frozen out of the collector's sight, a full collection
        # under ingest takes 2-5 ms instead of 65-79 ms, each of which stalled every request in
        # flight (22 in one ingest benchmark run: the p99 outliers of benchmarks/README.md).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            if app.state.ingest_workers is not None:
                await app.state.ingest_workers.stop()
            await app.state.maintenance.stop()
            await app.state.watch.stop()
            await app.state.worker.stop()
            await pool.close()

    app = FastAPI(
        title="shopfloor-spc",
        version="0.1.0",
        description="Statistical Process Control service: ingest, SPC on ingest, alarms, webhooks.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.hub = Hub(settings.ws_queue_size)
    app.state.metrics = Counter()
    app.state.ingest_workers = None

    errors.install(app)

    api = APIRouter(prefix=API_PREFIX)
    for module in (ingest, hierarchy, characteristics, charts, analysis, alarms, webhooks, keys,
                   me, audit, health, ws):
        api.include_router(module.router)
    app.include_router(api, responses=errors.ERROR_RESPONSES)
    app.add_api_route("/metrics", health.metrics, include_in_schema=False)

    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=[o.strip() for o in settings.cors_origins.split(",")],
            allow_methods=["*"], allow_headers=["*"],
        )

    dashboard = Path(settings.dashboard_dir) if settings.dashboard_dir else DEFAULT_DASHBOARD
    if dashboard.is_dir():
        app.mount("/ui", StaticFiles(directory=dashboard, html=True), name="ui")

        @app.get("/", include_in_schema=False)
        async def root() -> RedirectResponse:
            return RedirectResponse("/ui/")

    return app
