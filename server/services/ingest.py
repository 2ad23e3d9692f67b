"""Ingest: validate a batch whole, store it once, evaluate SPC, then publish.

A batch is all or nothing: any invalid sample rejects it before a row is written, and storage plus
evaluation plus the webhook outbox share one transaction. Characteristics are locked in id order
(transaction-scoped advisory locks), so concurrent batches touching the same series serialise and
never deadlock.

Under those locks one query reads what is stored around the batch (`measurements.stored_near`):
the samples already stored at the batch's timestamps are its duplicates, and with the points
before them they form the evaluation window, so the new samples are written with one plain COPY
and never read back. Samples are handled as the dicts the JSON parser produced (validated at
the edge, by `parse_batch`), not as one model object each.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, NamedTuple, NoReturn, NotRequired

import asyncpg
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError
from typing_extensions import TypedDict  # pydantic needs this one on Python < 3.12

from server.api.errors import describe_errors
from server.exceptions import IngestRejected, InvalidRequest, PayloadTooLarge, PermissionDenied
from server.models import QUALITY_CODES, IngestRequest, IngestResult, SampleIn
from server.repository import characteristics as characteristics_repo
from server.repository import hierarchy as hierarchy_repo
from server.repository import limits as limits_repo
from server.repository import measurements as measurements_repo
from server.repository import subgroups as subgroups_repo
from server.services import spc_eval
from server.services.charting import ATTRIBUTE_KINDS, SIZED_KINDS, SUBGROUP_KINDS

INGEST_LOCK_CLASS = 0x5350  # first key of the two-int advisory lock; the second is the id
BAD = QUALITY_CODES["bad"]

# A validated sample: {"characteristic", "ts", and optionally "value", "quality", "part_id",
# "size"} (server.models.SampleIn's fields; absent ones take SampleIn's defaults).
Sample = dict[str, Any]


def as_typed_dict(model: type[BaseModel], **annotations: Any) -> type:
    """A TypedDict with `model`'s fields, constraints and `extra="forbid"` (absent optional
    fields stay absent: readers apply the model's defaults), so that a batch validates into
    plain dicts, twice as fast as into one model object per sample, with the same rules and
    error messages. `annotations` replace fields' types (nested models)."""
    fields: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        kind = annotations.get(name, info.annotation)
        if info.metadata:
            kind = Annotated[(kind, *info.metadata)]
        fields[name] = kind if info.is_required() else NotRequired[kind]
    typed = TypedDict(model.__name__ + "Dict", fields)  # type: ignore[operator]
    typed.__pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[attr-defined]
    return typed


SampleDict = as_typed_dict(SampleIn)
BATCH = TypeAdapter(as_typed_dict(IngestRequest, samples=list[SampleDict]))  # type: ignore[valid-type]


def parse_batch(raw: bytes) -> dict[str, Any]:
    """The batch as dicts, validated as `IngestRequest` would validate it."""
    try:
        return BATCH.validate_json(raw)
    except ValidationError as exc:
        raise InvalidRequest(f"invalid batch: {describe_errors(exc.errors())}") from exc


def nobody(key: str) -> bool:
    return False


class Outcome(NamedTuple):
    """A stored batch: its result, the live events to publish, and its newest sample's ts."""

    result: IngestResult
    events: list[dict[str, Any]]
    newest: datetime | None


async def ingest_body(
    pool: asyncpg.Pool, raw: bytes, idempotency_key: str | None, max_samples: int,
    max_future_skew_s: float, scope: str | None = None, watched: Callable[[str], bool] = nobody,
) -> Outcome:
    """Parse a request body (JSON, already size-checked and decompressed) and `ingest` it: the
    whole of POST /ingest past the HTTP layer, run in the server process or in an ingest
    worker process (server.ingest_worker)."""
    batch = parse_batch(raw)
    samples = batch["samples"]
    result, events = await ingest(pool, batch.get("agent"), samples, idempotency_key,
                                  max_samples, max_future_skew_s, scope=scope, watched=watched)
    return Outcome(result, events, max((s["ts"] for s in samples), default=None))


class Rows(NamedTuple):
    """A validated batch as `measurements` rows in batch order (characteristic_id, ts, value,
    quality, part_id, sample_size), with each characteristic's first and last ts, and whether
    every characteristic's samples came in strictly increasing time (then none repeats)."""

    rows: list[tuple]
    first: dict[int, datetime]
    last: dict[int, datetime]
    ordered: bool


def to_rows(samples: list[Sample], ids: dict[str, int], max_future_skew_s: float) -> Rows:
    """Validate the batch and convert it to rows, in one pass: refuse it naming the first bad
    sample, or else the first sample of an unknown characteristic; every ts in UTC."""
    latest = datetime.now(UTC) + timedelta(seconds=max_future_skew_s)
    isfinite, codes = math.isfinite, QUALITY_CODES
    rows: list[tuple] = []
    append = rows.append
    first: dict[int, datetime] = {}
    last: dict[int, datetime] = {}
    ordered = True
    unknown: int | None = None
    for i, s in enumerate(samples):
        ts = s["ts"]
        if ts.tzinfo is None:
            _refuse(i, s, ts, "ts has no time zone; send UTC with 'Z'")
        # The standard library's UTC from here on: with the parser's own tzinfo every
        # comparison and conversion calls back into it (20 times slower), and what is
        # published (points, alarms) reads in UTC, as what is read from the database does.
        ts = s["ts"] = ts.astimezone(UTC)
        quality = s.get("quality", "good")
        value = s.get("value")
        if ts > latest:
            _refuse(i, s, ts,
                    f"ts is more than {max_future_skew_s:g}s in the future (agent clock?)")
        code = codes[quality]
        if code == BAD:
            value = None
        elif value is None:
            _refuse(i, s, ts, f"a {quality} sample needs a value")
        elif not isfinite(value):
            _refuse(i, s, ts, f"value must be finite, got {value}")
        cid = ids.get(s["characteristic"])
        if cid is None:
            if unknown is None:
                unknown = i
            continue
        append((cid, ts, value, code, s.get("part_id"), s.get("size")))
        prev = last.get(cid)
        if prev is None:
            first[cid] = last[cid] = ts
        elif ts > prev:
            last[cid] = ts
        else:
            ordered = False
            if ts < first[cid]:
                first[cid] = ts
    if unknown is not None:
        raise IngestRejected(
            f"samples[{unknown}]: unknown characteristic {samples[unknown]['characteristic']!r}; "
            "create it first (POST /api/v1/characteristics)", sample=unknown)
    return Rows(rows, first, last, ordered)


def _refuse(i: int, s: Sample, ts: datetime, problem: str) -> NoReturn:
    raise IngestRejected(f"samples[{i}] ({s['characteristic']} at {ts.isoformat()}): {problem}",
                         sample=i)


async def ingest(
    pool: asyncpg.Pool, agent: str | None, samples: list[Sample], idempotency_key: str | None,
    max_samples: int, max_future_skew_s: float, scope: str | None = None,
    watched: Callable[[str], bool] = nobody,
) -> tuple[IngestResult, list[dict[str, Any]]]:
    """Store a batch; return its result and the live events to publish after commit (point
    events only for the characteristics `watched`)."""
    if len(samples) > max_samples:
        raise PayloadTooLarge(f"batch has {len(samples)} samples; the limit is {max_samples}")
    keys = sorted({s["characteristic"] for s in samples})
    async with pool.acquire() as conn, conn.transaction():
        # One statement finds the batch's characteristics and takes every lock, in id order,
        # so batches never deadlock: KEY SHARE on the characteristics, which keeps them from
        # being deleted while their rows are written (what the foreign key did for every row,
        # migration 0008), and the advisory locks that serialise batches of the same
        # characteristic. It also lets this transaction cache query plans again (the pool
        # forces a fresh plan for every execution, for the chart queries' sake).
        known = await characteristics_repo.lock_for_ingest(conn, keys, INGEST_LOCK_CLASS)
        rows, first, last, ordered = to_rows(samples, {k: c["id"] for k, c in known.items()},
                                             max_future_skew_s)
        if scope is not None:
            lines = await hierarchy_repo.lines_of(conn, [c["id"] for c in known.values()])
            for i, s in enumerate(samples):
                line = lines[known[s["characteristic"]]["id"]]
                if line != scope:
                    raise PermissionDenied(
                        f"samples[{i}]: this agent key may write line {scope!r} only; "
                        f"{s['characteristic']!r} is on line {line!r}",
                        sample=i,
                    )
        check_kinds(samples, rows, known)
        by_id = {c["id"]: c for c in known.values()}
        cids = sorted(by_id)
        versions = await limits_repo.versions_for(conn, cids) if cids else {}
        requests, preload = [], set()
        for cid in cids:
            window = spc_eval.preload_request(by_id[cid], versions[cid], first[cid])
            if window is None:  # read only the batch's own time span, for duplicates
                requests.append((cid, first[cid], 0, last[cid]))
            else:
                requests.append((cid, *window, None))
                preload.add(cid)
        stored = await measurements_repo.stored_near(conn, requests)
        new = drop_stored(rows, stored, first, ordered)
        duplicates = len(rows) - len(new)
        if idempotency_key is not None and not await measurements_repo.claim_batch(
            conn, idempotency_key, agent, len(new), duplicates
        ):
            found = await measurements_repo.stored_batch(conn, idempotency_key)
            return IngestResult(accepted=found["accepted"], duplicates=found["duplicates"],
                                replayed=True), []
        if new:
            await measurements_repo.copy_new(conn, new)
        events = await evaluate_new(conn, by_id, versions, stored, preload, new, watched)
        return IngestResult(accepted=len(new), duplicates=duplicates), events


def drop_stored(
    rows: list[tuple], stored: dict[int, list[asyncpg.Record]], first: dict[int, datetime],
    ordered: bool,
) -> list[tuple]:
    """The rows to write: neither stored already nor repeating an earlier row of the batch at
    the same (characteristic, ts) (the first one is kept). `ordered`: every characteristic's
    rows are in strictly increasing time, so none repeats within the batch."""
    seen = {(cid, r["ts"]) for cid, found in stored.items() for r in found
            if r["ts"] >= first[cid]}
    # the common case: nothing stored in the batch's span, no sample twice in the batch
    if not seen and (ordered or len({(r[0], r[1]) for r in rows}) == len(rows)):
        return rows
    new = []
    for row in rows:
        key = (row[0], row[1])
        if key not in seen:
            seen.add(key)
            new.append(row)
    return new


async def evaluate_new(
    conn: asyncpg.Connection, by_id: dict[int, asyncpg.Record],
    versions: dict[int, list[asyncpg.Record]], stored: dict[int, list[asyncpg.Record]],
    preload: set[int], new: list[tuple], watched: Callable[[str], bool],
) -> list[dict[str, Any]]:
    """Evaluate the newly stored samples of each characteristic; the live events they produce."""
    by_char: dict[int, list[tuple]] = {}
    for r in new:
        by_char.setdefault(r[0], []).append(r)
    events: list[dict[str, Any]] = []
    jobs: list[spc_eval.Job] = []
    windows: dict[int, spc_eval.Points] = {}
    for cid, new_rows in sorted(by_char.items()):
        characteristic = by_id[cid]
        key, kind = characteristic["key"], characteristic["chart_type"]
        if kind not in SUBGROUP_KINDS and watched(key):
            events.extend(
                {"type": "point", "characteristic": key, "ts": r[1].isoformat(),
                 "quality": "bad", "statistic": None, "violations": []}
                for r in new_rows if r[3] == BAD
            )
        good = [(r[1], r[2], r[5]) for r in new_rows if r[3] != BAD]
        if kind in SUBGROUP_KINDS:
            since = await subgroups_repo.form(
                conn, cid, characteristic["subgrouping"],
                characteristic["subgroup_size"], characteristic["subgroup_window_s"],
            )
            if since:
                jobs.append(spc_eval.Job(characteristic, min(since)))
        elif good:
            job = spc_eval.Job(characteristic, min(g[0] for g in good))
            jobs.append(job)
            if cid in preload:
                windows[cid] = spc_eval.window_from(kind, stored[cid], good, job.since)
    return events + await spc_eval.evaluate(conn, jobs, watched=watched, versions=versions,
                                            preloaded=windows)


def check_kinds(
    samples: list[Sample], rows: list[tuple], known: dict[str, asyncpg.Record]
) -> None:
    """Attributes charts count things: whole, non-negative numbers, with the lot size (from the
    sample, or the characteristic's fixed `sample_size`, which is filled in here, in the sample
    and in its row: rows[i] is samples[i]'s, every characteristic being known by now)."""
    attributes = {key for key, c in known.items() if c["chart_type"] in ATTRIBUTE_KINDS}
    if not attributes:
        return
    for i, s in enumerate(samples):
        characteristic = known[s["characteristic"]]
        kind = characteristic["chart_type"]
        if s.get("quality", "good") == "bad" or kind not in ATTRIBUTE_KINDS:
            continue
        where = f"samples[{i}] ({s['characteristic']}, a {kind} chart)"
        value = s["value"]  # to_rows() has checked good samples have values
        if value < 0 or value != int(value):
            raise IngestRejected(f"{where}: value must be a whole count >= 0, got {value}",
                                 sample=i)
        size = s.get("size")
        if kind in SIZED_KINDS and size is None:
            size = s["size"] = characteristic["sample_size"]
            rows[i] = (*rows[i][:5], size)
            if size is None:
                raise IngestRejected(
                    f"{where}: 'size' (units inspected) is required: send it with the sample or "
                    "set the characteristic's sample_size", sample=i)
        if kind in ("p", "np") and size is not None and value > size:
            raise IngestRejected(
                f"{where}: {value:g} defectives exceed the {size:g} units inspected", sample=i
            )
