"""The server's one settings class, read from `SPC_*` environment variables."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

ENV_PREFIX = "SPC_"


class SettingsError(ValueError):
    """A setting from the environment is invalid; the message names the variable."""


class Settings(BaseModel):
    database_url: str = Field(
        "postgresql://postgres@127.0.0.1:55432/spc",
        description="asyncpg DSN of the database (env DATABASE_URL or SPC_DATABASE_URL)",
    )
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    # auto: use TimescaleDB when the database offers it; off: plain PostgreSQL tables.
    timescaledb: Literal["auto", "off"] = "auto"
    pool_min_size: int = Field(2, ge=1)
    pool_max_size: int = Field(10, ge=1)
    # Worker processes that parse, store and evaluate ingest batches (0: the server process
    # does): a Python process uses one core, so set this to the number of cores for throughput.
    # Each worker has a pool of up to pool_max_size connections of its own.
    ingest_workers: int = Field(0, ge=0, le=64)
    max_batch_samples: int = Field(50_000, ge=1)
    max_body_bytes: int = Field(32 * 1024 * 1024, ge=1024)
    # Samples stamped further than this in the future are rejected (clock-skewed agents).
    max_future_skew_s: float = Field(300.0, ge=0)
    webhook_max_attempts: int = Field(8, ge=1)
    webhook_backoff_base_s: float = Field(2.0, gt=0)
    webhook_backoff_max_s: float = Field(600.0, gt=0)
    webhook_timeout_s: float = Field(5.0, gt=0)
    # Comma-separated URL prefixes webhooks may target; empty = any http(s) URL.
    webhook_allowlist: str = ""
    ws_queue_size: int = Field(1000, ge=1)
    # Chart ranges with more points than this are reduced in the database (weeks at 1 Hz).
    chart_reduce_in_database_above: int = Field(300_000, ge=1)
    # An agent with no heartbeat for this long raises an "agent silent" alarm.
    agent_silent_after_s: float = Field(60.0, gt=0)
    watchdog_interval_s: float = Field(5.0, gt=0)
    # Raw samples older than this are removed (0 keeps them forever); hourly rollups stay.
    retention_days: float = Field(0.0, ge=0)
    maintenance_interval_s: float = Field(3600.0, gt=0)
    cors_origins: str = ""
    dashboard_dir: str | None = None
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    # text: human-readable lines; json: one JSON object per line, for log collectors.
    log_format: Literal["text", "json"] = "text"
    tls_certfile: str | None = None
    tls_keyfile: str | None = None

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: object) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for name in cls.model_fields:
            key = ENV_PREFIX + name.upper()
            if key in env:
                values[name] = env[key]
        if "database_url" not in values and "DATABASE_URL" in env:
            values["database_url"] = env["DATABASE_URL"]
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls(**values)
        except ValidationError as exc:
            problems = "; ".join(
                f"{ENV_PREFIX}{'.'.join(str(p) for p in err['loc']).upper()}: {err['msg']}"
                for err in exc.errors()
            )
            raise SettingsError(f"invalid server settings: {problems}") from exc
