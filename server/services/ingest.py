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
from server.repository import subgroups as subgroups_repo
from server.services import spc_eval
from server.services.charting import ATTRIBUTE_KINDS, SIZED_KINDS, SUBGROUP_KINDS

INGEST_LOCK_CLASS = 0x5350  # first key of the two-int advisory lock; the second is the id


def validate(request: IngestRequest, max_samples: int, max_future_skew_s: float) -> None:
    if len(request.samples) > max_samples:
        raise PayloadTooLarge(
            f"batch has {len(request.samples)} samples; the limit is {max_samples}"
        )
    latest = datetime.now(UTC) + timedelta(seconds=max_future_skew_s)
    for i, s in enumerate(request.samples):
        problem = None
        if s.ts.tzinfo is None:
            problem = "ts has no time zone; send UTC with 'Z'"
        elif s.ts > latest:
            problem = f"ts is more than {max_future_skew_s:g}s in the future (agent clock?)"
        elif s.quality != "bad" and s.value is None:
            problem = f"a {s.quality} sample needs a value"
        elif s.quality != "bad" and not math.isfinite(s.value):  # type: ignore[arg-type]
            problem = f"value must be finite, got {s.value}"
        if problem is not None:  # the message is built only for the sample that fails
            raise IngestRejected(
                f"samples[{i}] ({s.characteristic} at {s.ts.isoformat()}): {problem}", sample=i
            )


async def ingest(
    pool: asyncpg.Pool, request: IngestRequest, idempotency_key: str | None,
    max_samples: int, max_future_skew_s: float, scope: str | None = None,
    want_points: bool = True,
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
        check_kinds(request, known)
        rows = [
            (known[s.characteristic]["id"], s.ts, None if s.quality == "bad" else s.value,
             QUALITY_CODES[s.quality], s.part_id, s.size)
            for s in request.samples
        ]
        async with conn.transaction():
            if idempotency_key is not None and not await measurements_repo.claim_batch(
                conn, idempotency_key, request.agent
            ):
                stored = await measurements_repo.stored_batch(conn, idempotency_key)
                return IngestResult(
                    accepted=stored["accepted"], duplicates=stored["duplicates"], replayed=True
                ), []
            # One statement takes every lock, in id order, so batches never deadlock.
            await conn.execute(
                "SELECT count(pg_advisory_xact_lock($1, id)) FROM unnest($2::int[]) AS id",
                INGEST_LOCK_CLASS, sorted(r["id"] for r in known.values()),
            )
            inserted = await measurements_repo.insert_new(conn, rows) if rows else []
            if idempotency_key is not None:
                await measurements_repo.finish_batch(
                    conn, idempotency_key, len(inserted), len(rows) - len(inserted)
                )
            by_char: dict[int, list[asyncpg.Record]] = defaultdict(list)
            for r in inserted:
                by_char[r["characteristic_id"]].append(r)
            by_id = {c["id"]: c for c in known.values()}
            events = await evaluate_new(conn, [(by_id[cid], new) for cid, new in
                                               sorted(by_char.items())], want_points)
        return IngestResult(accepted=len(inserted), duplicates=len(rows) - len(inserted)), events


async def evaluate_new(
    conn: asyncpg.Connection, stored: list[tuple[asyncpg.Record, list[asyncpg.Record]]],
    want_points: bool,
) -> list[dict[str, Any]]:
    """Evaluate the newly stored samples of each characteristic; the live events they produce."""
    events: list[dict[str, Any]] = []
    jobs: list[spc_eval.Job] = []
    for characteristic, new_rows in stored:
        key, kind = characteristic["key"], characteristic["chart_type"]
        if want_points and kind not in SUBGROUP_KINDS:
            events.extend(
                {"type": "point", "characteristic": key, "ts": r["ts"].isoformat(),
                 "quality": "bad", "statistic": None, "violations": []}
                for r in new_rows if r["quality"] == QUALITY_CODES["bad"]
            )
        good = [r["ts"] for r in new_rows if r["quality"] != QUALITY_CODES["bad"]]
        if kind in SUBGROUP_KINDS:
            good = await subgroups_repo.form(
                conn, characteristic["id"], characteristic["subgrouping"],
                characteristic["subgroup_size"], characteristic["subgroup_window_s"],
            )
        if good:
            jobs.append(spc_eval.Job(characteristic, min(good)))
    return events + await spc_eval.evaluate(conn, jobs, want_points=want_points)


def check_kinds(request: IngestRequest, known: dict[str, asyncpg.Record]) -> None:
    """Attributes charts count things: whole, non-negative numbers, with the lot size (from the
    sample, or the characteristic's fixed `sample_size`, which is filled in here)."""
    for i, s in enumerate(request.samples):
        characteristic = known[s.characteristic]
        kind = characteristic["chart_type"]
        if s.quality == "bad" or kind not in ATTRIBUTE_KINDS:
            continue
        where = f"samples[{i}] ({s.characteristic}, a {kind} chart)"
        assert s.value is not None  # validate() has checked good samples have values
        if s.value < 0 or s.value != int(s.value):
            raise IngestRejected(f"{where}: value must be a whole count >= 0, got {s.value}",
                                 sample=i)
        if kind in SIZED_KINDS and s.size is None:
            s.size = characteristic["sample_size"]
            if s.size is None:
                raise IngestRejected(
                    f"{where}: 'size' (units inspected) is required: send it with the sample or "
                    "set the characteristic's sample_size", sample=i)
        if kind in ("p", "np") and s.size is not None and s.value > s.size:
            raise IngestRejected(
                f"{where}: {s.value:g} defectives exceed the {s.size:g} units inspected", sample=i
            )
