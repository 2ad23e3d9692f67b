"""What the application does once at start, checked in-process against a real database."""

from __future__ import annotations

import gc

from server.core.config import Settings
from server.main import create_app


async def test_startup_objects_are_frozen_out_of_the_collector(database: str) -> None:
    """After start, the ~120k objects every request shares are out of the garbage collector's
    sight: a full collection then takes a few ms instead of ~70 ms, a stall of every request in
    flight (22 of them in one ingest benchmark run: benchmarks/README.md, "server")."""
    gc.unfreeze()
    app = create_app(Settings(database_url=database))
    try:
        async with app.router.lifespan_context(app):
            assert gc.get_freeze_count() > 50_000
    finally:
        gc.unfreeze()  # leave the test process as it was
