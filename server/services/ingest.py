"""Ingest: validate a batch whole, store it once, evaluate SPC, then publish.

A batch is all or nothing: any invalid sample rejects it before a row is written, and storage plus
evaluation plus the webhook outbox share one transaction. Characteristics are locked in id order
(transaction-scoped advisory locks), so concurrent batches touching the same series serialise and
never deadlock.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from server.exceptions import IngestRejected, PayloadTooLarge, PermissionDenied
from server.models import QUALITY_CODES, IngestRequest, IngestResult
from server.repository import characteristics as characteristics_repo
from server.repository import hierarchy as hierarchy_repo
from server.repository import measurements as measurements_repo
from server.services import spc_eval

INGEST_LOCK_CLASS = 0x5350  # first key of the two-int advisory lock; the second is the id


def validate(request: IngestRequest, max_samples: int, max_future_skew_s: float) -> None:
    if len(request.samples) > max_samples:
        raise PayloadTooLarge(
            f"batch has {len(request.samples)} samples; the limit is {max_samples}"
        )
    latest = datetime.now(UTC) + timedelta(seconds=max_future_skew_s)
    for i, s in enumerate(request.samples):
        where = f"samples[{i}] ({s.characteristic} at {s.ts.isoformat()})"
        if s.ts.tzinfo is None:
            raise IngestRejected(f"{where}: ts has no time zone; send UTC with 'Z'", sample=i)
        if s.ts > latest:
            raise IngestRejected(
                f"{where}: ts is more than {max_future_skew_s:g}s in the future (agent clock?)",
                sample=i,
            )
        if s.quality != "bad":
            if s.value is None:
                raise IngestRejected(f"{where}: a {s.quality} sample needs a value", sample=i)
            if not math.isfinite(s.value):
                raise IngestRejected(f"{where}: value must be finite, got {s.value}", sample=i)


async def ingest(
    pool: asyncpg.Pool, request: IngestRequest, idempotency_key: str | None,
    max_samples: int, max_future_skew_s: float, scope: str | None = None,
) -> tuple[IngestResult, list[dict[str, Any]]]:
    """Store a batch; return its result and the live events to publish after commit."""
    validate(request, max_samples, max_future_skew_s)
    keys = sorted({s.characteristic for s in request.samples})
    async with pool.acquire() as conn:
        known = await characteristics_repo.ids_for_keys(conn, keys)
        for i, s in enumerate(request.samples):
            if s.characteristic not in known:
                raise IngestRejected(
                    f"samples[{i}]: unknown characteristic {s.characteristic!r}; "
                    "create it first (POST /api/v1/characteristics)",
                    sample=i,
                )
        if scope is not None:
            lines = await hierarchy_repo.lines_of(conn, [c["id"] for c in known.values()])
            for i, s in enumerate(request.samples):
                line = lines[known[s.characteristic]["id"]]
                if line != scope:
                    raise PermissionDenied(
                        f"samples[{i}]: this agent key may write line {scope!r} only; "
                        f"{s.characteristic!r} is on line {line!r}",
                        sample=i,
                    )
        rows = [
            (known[s.characteristic]["id"], s.ts, None if s.quality == "bad" else s.value,
             QUALITY_CODES[s.quality], s.part_id)
            for s in request.samples
        ]
        events: list[dict[str, Any]] = []
        async with conn.transaction():
            if idempotency_key is not None and not await measurements_repo.claim_batch(
                conn, idempotency_key, request.agent
            ):
                stored = await measurements_repo.stored_batch(conn, idempotency_key)
                return IngestResult(
                    accepted=stored["accepted"], duplicates=stored["duplicates"], replayed=True
                ), []
            for cid in sorted(r["id"] for r in known.values()):
                await conn.execute("SELECT pg_advisory_xact_lock($1, $2)", INGEST_LOCK_CLASS, cid)
            inserted = await measurements_repo.insert_new(conn, rows) if rows else []
            if idempotency_key is not None:
                await measurements_repo.finish_batch(
                    conn, idempotency_key, len(inserted), len(rows) - len(inserted)
                )
            by_char: dict[int, list[asyncpg.Record]] = defaultdict(list)
            for r in inserted:
                by_char[r["characteristic_id"]].append(r)
            by_id = {c["id"]: c for c in known.values()}
            for cid, new_rows in sorted(by_char.items()):
                characteristic = by_id[cid]
                outcome = await spc_eval.evaluate(
                    conn, characteristic, min(r["ts"] for r in new_rows)
                )
                events.extend(point_events(characteristic["key"], new_rows, outcome))
                events.extend(outcome.events)
        return IngestResult(accepted=len(inserted), duplicates=len(rows) - len(inserted)), events


def point_events(
    key: str, rows: list[asyncpg.Record], outcome: spc_eval.Outcome
) -> list[dict[str, Any]]:
    return [
        {
            "type": "point", "characteristic": key, "ts": r["ts"].isoformat(),
            "value": r["value"], "quality": ("good", "uncertain", "bad")[r["quality"]],
            "violations": outcome.violations_by_ts.get(r["ts"], []),
        }
        for r in sorted(rows, key=lambda r: r["ts"])
    ]
