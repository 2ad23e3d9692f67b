"""The fast ingest path: batches parsed into dicts, duplicates found before one plain COPY, and the
evaluation window built from what was read before the write. Each is checked against what the
slow, obvious way gives: the pydantic model, the stored rows, a full re-evaluation (the chart)."""

from __future__ import annotations

import json
import random
from datetime import datetime

import asyncpg
import httpx
import pytest
from pydantic import ValidationError

from server.api.errors import describe_errors
from server.core.localdb import LocalCluster
from server.exceptions import InvalidRequest
from server.models import IngestRequest
from server.services.ingest import parse_batch
from tests.fixtures.server import LiveServer, start_live_server
from tests.server.helpers import WsListener, batch_headers, samples

GOOD = {"characteristic": "x", "ts": "2026-01-05T08:00:00Z", "value": 1.5}
BODIES = [
    {"samples": [GOOD]},
    {"agent": "a", "samples": [GOOD, {**GOOD, "quality": "bad", "value": None}]},
    {"samples": [{**GOOD, "part_id": "p1", "size": 50, "quality": "uncertain"}]},
    {"samples": [{**GOOD, "ts": "2026-01-05T10:00:00+02:00"}]},
    {"samples": [{**GOOD, "ts": "2026-01-05T08:00:00"}]},  # naive: refused later, by validate()
    {"samples": []},
    {"samples": [{**GOOD, "value": "abc"}]},
    {"samples": [{**GOOD, "value": True}]},
    {"samples": [{**GOOD, "value": "1.5"}]},
    {"samples": [{**GOOD, "quality": "great"}]},
    {"samples": [{**GOOD, "ts": 1767600000}]},
    {"samples": [{**GOOD, "ts": "yesterday"}]},
    {"samples": [{k: v for k, v in GOOD.items() if k != "ts"}]},
    {"samples": [{**GOOD, "characteristic": ""}]},
    {"samples": [{**GOOD, "characteristic": "a\x00b"}]},
    {"samples": [{**GOOD, "part_id": "p" * 129}]},
    {"samples": [{**GOOD, "size": 0}]},
    {"samples": [{**GOOD, "size": "5"}]},
    {"samples": [{**GOOD, "extra": 1}]},
    {"samples": [GOOD], "extra": 1},
    {"agent": "a\x00", "samples": [GOOD]},
    {"agent": 5, "samples": [GOOD]},
    {"samples": "none"},
    {},
    [],
]


@pytest.mark.parametrize("body", BODIES, ids=range(len(BODIES)))
def test_batch_parser_validates_as_the_model_does(body) -> None:
    raw = json.dumps(body).encode()
    try:
        model = IngestRequest.model_validate_json(raw)
    except ValidationError as exc:
        with pytest.raises(InvalidRequest) as refused:
            parse_batch(raw)
        assert str(refused.value) == f"invalid batch: {describe_errors(exc.errors())}"
        return
    parsed = parse_batch(raw)
    defaults = {"value": None, "quality": "good", "part_id": None, "size": None}
    got = {"agent": parsed.get("agent"), "samples": [defaults | s for s in parsed["samples"]]}
    assert got == model.model_dump()


def test_parser_refuses_what_is_not_json() -> None:
    for raw in (b"{not json", b"", b'{"samples": [NaN'):
        with pytest.raises(InvalidRequest, match="invalid batch"):
            parse_batch(raw)


@pytest.fixture(scope="module", params=["0", "2"], ids=["in the server", "2 ingest workers"])
def live_server(pg_cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory,
                request: pytest.FixtureRequest):
    """Every ingest path test twice: batches stored by the server process, and by ingest
    worker processes (SPC_INGEST_WORKERS), which must give exactly the same results."""
    server = start_live_server(pg_cluster, tmp_path_factory.mktemp("server"),
                               SPC_INGEST_WORKERS=request.param)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def admin(live_server: LiveServer):
    with live_server.client("admin") as client:
        yield client


def series(admin, key: str, center: float = 10.0, sigma: float = 1.0) -> None:
    r = admin.post("/characteristics", json={"key": key, "name": key, "baseline_points": 0})
    assert r.status_code == 201, r.text
    r = admin.post(f"/characteristics/{key}/limits", json={
        "center": center, "sigma": sigma, "reason": "test",
        "effective_from": "2026-01-01T00:00:00Z"})
    assert r.status_code == 201, r.text


def post(live_server: LiveServer, batch: list[dict], key: str | None = None) -> dict:
    r = httpx.post(f"{live_server.url}/api/v1/ingest", json={"samples": batch},
                   headers=batch_headers(live_server.headers("agent"), key), timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


def test_duplicates_in_the_batch_and_against_stored_samples(live_server: LiveServer,
                                                             admin) -> None:
    series(admin, "dup")
    first = samples("dup", [1.0, 2.0, 3.0])
    # the same (characteristic, ts) twice in one batch: the first one is kept
    twice = [*first, {**first[1], "value": 99.0}]
    assert post(live_server, twice) == {"accepted": 3, "duplicates": 1, "replayed": False}
    # stored ones and new ones in one batch, out of order, under a new key
    mixed = [*samples("dup", [5.0, 4.0], start=4)[::-1], *first,
             *samples("dup", [None], start=3)]
    assert post(live_server, mixed) == {"accepted": 3, "duplicates": 3, "replayed": False}
    # a replay under the first key changes nothing and reports the first result
    assert post(live_server, samples("dup", [7.0], start=9), key="dup-1")["accepted"] == 1
    assert post(live_server, samples("dup", [8.0], start=10), key="dup-1") == {
        "accepted": 1, "duplicates": 0, "replayed": True}
    points = admin.get("/characteristics/dup/chart").json()["points"]
    assert [(p["statistic"], p["quality"]) for p in points] == [
        (1.0, "good"), (2.0, "good"), (3.0, "good"), (None, "bad"), (5.0, "good"),
        (4.0, "good"), (7.0, "good")]


async def raised(live_server: LiveServer, key: str) -> set[tuple[str, datetime]]:
    conn = await asyncpg.connect(live_server.dsn)
    try:
        rows = await conn.fetch(
            """SELECT v.rule, v.ts FROM violations v JOIN characteristics c
               ON c.id = v.characteristic_id WHERE c.key = $1""", key)
    finally:
        await conn.close()
    return {(r["rule"], r["ts"]) for r in rows}


def charted(admin, key: str) -> set[tuple[str, datetime]]:
    """The violations of a full evaluation of the stored series, as the chart API scores it."""
    points = admin.get(f"/characteristics/{key}/chart", params={"limit": 100_000}).json()
    return {(rule, datetime.fromisoformat(p["ts"])) for p in points["points"]
            for rule in p["violations"]}


def process(rng: random.Random, n: int) -> list[float | None]:
    """In control, with shifts and spikes that complete every WE rule now and then, and some
    bad samples."""
    out: list[float | None] = []
    mean = 10.0
    for i in range(n):
        if i % 40 == 20:
            mean = 10.0 + rng.choice([-1.5, 1.5, 0.0])
        if i % 40 == 35:
            mean = 10.0
        v = rng.gauss(mean, 1.0) if rng.random() > 0.02 else mean + rng.choice([-4, 4])
        out.append(None if rng.random() < 0.03 else v)
    return out


async def test_in_order_batches_raise_exactly_what_a_full_evaluation_finds(
    live_server: LiveServer, admin
) -> None:
    rng = random.Random(6)
    series(admin, "seq")
    values = process(rng, 600)
    batch = samples("seq", values)
    i = 0
    while i < len(batch):
        n = rng.choice([1, 2, 7, 30, 100])
        part = batch[i:i + n]
        if rng.random() < 0.3 and i:  # an agent retry that overlaps the previous batch
            part = batch[max(0, i - 5):i + n]
        post(live_server, part)
        i += n
    found = charted(admin, "seq")
    assert len(found) > 20  # the process does violate the rules
    assert await raised(live_server, "seq") == found


async def test_late_samples_raise_what_they_complete_once(live_server: LiveServer,
                                                         admin) -> None:
    rng = random.Random(7)
    series(admin, "late")
    values = process(rng, 400)
    batch = samples("late", values)
    order = list(range(len(batch)))
    # mostly in order, with samples held back and sent up to 60 positions late
    held = set(rng.sample(order, 40))
    sent: list[int] = []
    pending: list[int] = []
    for i in order:
        if i in held:
            pending.append(i)
            continue
        sent.append(i)
        if pending and rng.random() < 0.1:
            sent.append(pending.pop(0))
    sent.extend(pending)
    j = 0
    while j < len(sent):
        n = rng.choice([1, 3, 10, 25])
        post(live_server, [batch[k] for k in sent[j:j + n]])
        j += n
    before = await raised(live_server, "late")
    # Every violation of the final series was raised at its point; a late sample may also have
    # broken a pattern raised before it arrived (raised alarms are never withdrawn).
    assert charted(admin, "late") <= before
    # sending everything again raises nothing new
    for k in range(0, len(batch), 50):
        assert post(live_server, batch[k:k + 50])["accepted"] == 0
    assert await raised(live_server, "late") == before


def test_point_events_only_for_watched_characteristics(live_server: LiveServer,
                                                       admin) -> None:
    series(admin, "seen")
    series(admin, "unseen")
    ws = WsListener(live_server.ws_url, live_server.keys["operator"], ["seen"])
    try:
        post(live_server, [*samples("unseen", [10.0, 20.0]), *samples("seen", [10.0, 20.0])])
        alarm = ws.wait_for(lambda m: m["type"] == "alarm")
        assert alarm["characteristic"] == "seen"
        ws.wait_for(lambda m: m["type"] == "point" and m["statistic"] == 20.0)
    finally:
        ws.close()
    assert {m.get("characteristic") for m in ws.messages if m["type"] != "subscribed"} == {
        "seen"}


async def test_alarm_episodes_and_their_webhook_events_in_one_statement(
    live_server: LiveServer, admin
) -> None:
    series(admin, "epi")
    hook = admin.post("/webhooks", json={"url": "http://127.0.0.1:9/unreachable"})
    assert hook.status_code == 201, hook.text
    try:
        calm = [10.0, 10.2, 9.8, 10.1, 9.9]
        post(live_server, samples("epi", [*calm, 15.0, 15.5]))  # opens we1 (2 points)
        post(live_server, samples("epi", [16.0, 10.0, 15.0], start=7))  # extends, then a new one
        alarms = admin.get("/alarms", params={"characteristic": "epi", "rule": "we1"}).json()
        assert sorted(a["point_count"] for a in alarms) == [1, 3]
        conn = await asyncpg.connect(live_server.dsn)
        try:
            outbox = await conn.fetch(
                "SELECT event_id, payload FROM webhook_outbox WHERE subscription_id = $1",
                hook.json()["id"])
            recorded = await conn.fetch(
                """SELECT v.alarm_id, count(*) AS n FROM violations v JOIN characteristics c
                   ON c.id = v.characteristic_id WHERE c.key = 'epi' AND v.rule = 'we1'
                   GROUP BY v.alarm_id""")
        finally:
            await conn.close()
    finally:
        admin.delete(f"/webhooks/{hook.json()['id']}")
    by_id = {a["id"]: a for a in alarms}
    assert {r["alarm_id"]: r["n"] for r in recorded} == {
        i: a["point_count"] for i, a in by_id.items()}
    opened = {json.loads(r["payload"])["data"]["id"]: r["event_id"] for r in outbox
              if json.loads(r["payload"])["data"]["characteristic"] == "epi"
              and json.loads(r["payload"])["data"]["rule"] == "we1"}
    assert opened == {i: f"alarm-{i}-opened" for i in by_id}
