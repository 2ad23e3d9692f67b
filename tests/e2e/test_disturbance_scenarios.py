"""Every disturbance the simulators offer, through the whole chain, over OPC UA and over Modbus.

simulator (tests/e2e/disturbance_line.yaml: one variable per disturbance, all N(100, 1)) → one
agent per protocol reading all of them → `POST /ingest` → TimescaleDB → SPC on ingest against
known limits (phase II: center 100, sigma 1) → the alarm on the WebSocket and at a webhook
receiver (signature verified). All disturbances are injected at once, so one run of ~25 s covers
them all; each is then checked on its own pair of characteristics (`op.<variable>`,
`mb.<variable>`).

What is asserted, per disturbance and protocol:

* the rule the disturbance exists to trip fires, at a sample within its detection window
  (counted in simulator samples from the first disturbed one, which the test reads from the
  simulator's /state: index - samples_affected), and the alarm that carries that violation is
  pushed on the WebSocket and delivered to the webhook (same alarm id, rule, characteristic);
* OPC UA (a subscription for the variables whose value changes at every sample, with the
  source timestamp of each; stuck and dropout polled every 50 ms with skip_unchanged, because a
  value that repeats or stays null is no data change and a subscription would not report it):
  every stored row is a simulator sample (/history: timestamp, value, quality); over the
  subscription none is missing; and the violations the server recorded are exactly those
  spc_core finds on the simulator's own samples: so the firing sample is the one the process
  produced, not an artefact of the chain;
* Modbus (polled every 220 ms, slightly slower than the sample rate, so no sample is read twice
  in normal operation; about one sample in eleven is never read, and Modbus carries no
  timestamp, so the agent stamps its read): every stored value is the float32 image of a
  simulator sample, in the simulator's order; the violations recorded equal spc_core's on the
  stored series (SPC on ingest, batch by batch, equals a batch evaluation).

Timestamps are compared at millisecond precision (the ingest contract's), values exactly.

Detection windows: with a fixed seed the noise stream is fixed, but the sample at which the
injection lands depends on timing, so the firing sample varies between runs. The windows below
were set from 1,000 runs of the same process model through spc_core (the largest delay seen is
given with each); where a rule fires at a fixed point whatever the noise (stratification: the
15th collapsed point; stuck: the 9th repeated point at the latest) the window is that point.

Not deterministic, and how it is handled:

* cycle (period 2) over Modbus: Nelson 4 needs 14 consecutive alternating points; a sample the
  poll misses (about 1 in 11 at these rates) puts two same-sign points next to each other and
  breaks the alternation, so Nelson 4 fires only when 14 cycle samples in a row happen to be
  read. What is deterministic: at amplitude 3 sigma about every other point lies beyond 3 sigma
  and the moving range is ~6 sigma, so Nelson 1 (or rule 1 on the MR chart) fires within a few
  samples; that is asserted, and Nelson 4 over Modbus is only reported. Over OPC UA (every
  sample) Nelson 4 is asserted.
* polled OPC UA (stuck, dropout): a poll that comes more than a sample period late (a loaded
  machine) misses a sample; misses are reported, and the stuck windows allow STUCK_SLACK.
* stuck: the sensor repeats its last good value x0 (quality good). What the rules do, read
  from x0: 9 points on one side of the center (Nelson 2) by the 9th stuck sample whatever x0 is
  (x0 is never exactly the center); Nelson 7 (15 within 1 sigma) by the 15th if |x0 - mean| <=
  1 sigma, else Nelson 8 (8 beyond 1 sigma) by the 8th (and Nelson 5/6/1 if x0 is beyond 2 or 3
  sigma). Equal values break trends (Nelson 3) and alternations (Nelson 4), and a moving range
  of 0 is inside the MR limits. Over OPC UA the stuck value arrives once per sample (a new
  source timestamp each time; an OPC UA *subscription* would not report it at all: the value
  does not change), so all of that is asserted. Over Modbus the repeated value is stored as often
  as the poll runs, so the point at which Nelson 2 completes varies: asserted within 20 samples
  (counted by the clock, as repeated values cannot be told apart).
* dropout: the sensor gives no value; the rows are stored with quality bad (value null) and no
  violation is recorded from the dropout's first sample on (bad points are not scored).
* disconnect is a device-level fault: tests/e2e/test_failure_scenarios.py.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from server.services import webhook_signing
from tests.e2e.chain import (
    LINE,
    MACHINE,
    MEAN,
    SIGMA,
    map_modbus,
    oracle,
    parse_ts,
    same_value,
    stored,
    violations,
    wait_for,
)
from tests.fixtures.server import LiveServer
from tests.fixtures.simulators import RunningSimulator
from tests.fixtures.webhooks import WebhookReceiver
from tests.server.helpers import WsListener

RATE_HZ = 5.0  # the line's sample rate: one sample every 200 ms per variable
OPCUA_POLL_S = 0.05  # 4 polls per sample; skip_unchanged drops the repeats
MODBUS_POLL_S = 0.22  # slightly slower than the samples: a sample is never read twice
SEED = 11
BEFORE = 20  # in-control points stored per characteristic before the injection
AFTER = 60  # simulator samples observed after the injection
# Polled OPC UA (stuck): a poll that comes more than a sample period late misses a sample (on a
# loaded machine, rarely); each miss moves a run's completing point one sample later.
STUCK_SLACK = 3


@dataclass(frozen=True)
class Case:
    variable: str  # = the disturbance kind
    inject: dict[str, Any]
    rules: str  # the characteristic's rule set
    expect: dict[str, frozenset[str]]  # protocol -> any of these rules must fire in the window
    window: dict[str, int]  # protocol -> detection window, in simulator samples (1 = first)
    extra: dict[str, Any] = field(default_factory=dict)


def both(rules: set[str], window: int, modbus_window: int | None = None) -> dict[str, Any]:
    return {"expect": {"opcua": frozenset(rules), "modbus": frozenset(rules)},
            "window": {"opcua": window, "modbus": modbus_window or window}}


CASES = [
    # 3 sigma shift: WE 1 or WE 2 on the first few points (largest delay seen: 6).
    Case("shift", {"magnitude": 3.0}, "we", **both({"we1", "we2"}, 10)),
    # +2 sigma per sample: six rising points (Nelson 3); largest delay seen 31 (OPC UA), 32 with
    # one sample in ten missed (Modbus).
    Case("trend", {"magnitude": 2.0}, "nelson", **both({"nelson3"}, 50)),
    # sigma x 3: a point beyond 3 sigma (WE 1) with probability 0.32 per sample; largest 19.
    Case("variance", {"magnitude": 3.0}, "we", **both({"we1"}, 40)),
    # +-3 sigma alternating (period 2): 14 alternating points, at the 14th cycle sample.
    Case("cycle", {"magnitude": 3.0, "period": 2}, "nelson",
         expect={"opcua": frozenset({"nelson4"}),
                 "modbus": frozenset({"nelson1", "mr:nelson1"})},
         window={"opcua": 20, "modbus": 20}),
    # sigma x 0.2: 15 points within 1 sigma, at the 15th collapsed sample at the latest (Modbus:
    # the 15th collapsed sample read; largest delay seen with misses: 21).
    Case("stratification", {"magnitude": 0.2}, "nelson", **both({"nelson7"}, 15, 30)),
    # mean +-3 sigma alternately: 8 points beyond 1 sigma on either side; largest 24.
    Case("mixture", {"magnitude": 3.0}, "nelson", **both({"nelson8"}, 40)),
    # 8 sigma spikes with probability 0.3 per sample: WE 1 at the first spike; largest 26.
    Case("outliers", {"magnitude": 8.0, "probability": 0.3}, "we", **both({"we1"}, 40)),
    # the last value repeated: 9 points on one side (Nelson 2) by the 9th; more below.
    Case("stuck", {}, "nelson", **both({"nelson2"}, 9 + STUCK_SLACK, 20)),
    # no value: bad quality, nothing to score.
    Case("dropout", {}, "nelson", expect={"opcua": frozenset(), "modbus": frozenset()},
         window={"opcua": 0, "modbus": 0}),
]
PROTOCOLS = {"opcua": "op", "modbus": "mb"}
# OPC UA: a subscription reports every sample of a changing value exactly once (queued, with its
# source timestamp); a value that repeats (stuck) or stays null (dropout) is no data change, so a
# subscription reports it once at most: those two are polled (skip_unchanged keeps one row per
# source timestamp, i.e. per sample, unless a poll comes more than a sample period late).
POLLED = ["stuck", "dropout"]
SUBSCRIBED = [c.variable for c in CASES if c.variable not in POLLED]


def key(protocol: str, variable: str) -> str:
    return f"{PROTOCOLS[protocol]}.{variable}"


def setup_characteristics(server: LiveServer, receiver: WebhookReceiver) -> str:
    with server.client("engineer") as c:
        for case in CASES:
            for protocol in PROTOCOLS:
                k = key(protocol, case.variable)
                r = c.post("/characteristics", json={
                    "key": k, "name": f"{case.variable} ({protocol})", "unit": "mm",
                    "rules": case.rules, "baseline_points": 0})
                assert r.status_code == 201, r.text
                r = c.post(f"/characteristics/{k}/limits", json={
                    "center": MEAN, "sigma": SIGMA, "reason": "process standard (line YAML)",
                    "effective_from": (datetime.now(UTC) - timedelta(hours=1)).isoformat()})
                assert r.status_code == 201, r.text
    with server.client("admin") as c:
        r = c.post("/webhooks", json={"url": receiver.url})
        assert r.status_code == 201, r.text
        return r.json()["secret"]


def start_agents(server: LiveServer, sim: RunningSimulator, agent_factory) -> None:
    common = {"server": {"url": server.url, "api_key": server.agent_key},
              "upload": {"batch_size": 500, "interval_s": 0.2}, "heartbeat": {"interval_s": 2}}
    def tags(variables: list[str]) -> list[dict[str, str]]:
        return [{"node_id": f"ns=2;s=E2E.{MACHINE}.{v}", "characteristic": key("opcua", v)}
                for v in variables]

    agent_factory({
        "agent": {"name": "e2e-dist-opcua"}, **common,
        "sources": [
            {"kind": "opcua", "name": "m1-opcua-sub", "endpoint": sim.opcua_endpoint,
             "security": {"policy": "None", "allow_insecure": True},
             "mode": "subscribe", "interval_s": 0.1, "queue_size": 20,
             "tags": tags(SUBSCRIBED)},
            {"kind": "opcua", "name": "m1-opcua-poll", "endpoint": sim.opcua_endpoint,
             "security": {"policy": "None", "allow_insecure": True},
             "mode": "poll", "skip_unchanged": True, "interval_s": OPCUA_POLL_S,
             "tags": tags(POLLED)},
        ],
    })
    agent_factory({
        "agent": {"name": "e2e-dist-modbus"}, **common,
        "sources": [{"kind": "modbus", "name": "m1-modbus", "host": "127.0.0.1",
                     "port": sim.modbus_port, "unit_id": 1, "interval_s": MODBUS_POLL_S,
                     "tags": [{"characteristic": key("modbus", c.variable), "address": 2 * i,
                               "type": "float32", "byte_order": "ABCD"}
                              for i, c in enumerate(CASES)]}],
    })


@pytest.mark.slow
async def test_each_disturbance_trips_its_rule_over_both_protocols(
    live_server: LiveServer, simulator_factory, agent_factory,
    webhook_receiver: WebhookReceiver,
) -> None:
    sim = simulator_factory(config=LINE, seed=SEED, rate=RATE_HZ)
    secret = setup_characteristics(live_server, webhook_receiver)
    keys = [key(p, c.variable) for c in CASES for p in PROTOCOLS]
    ws = WsListener(live_server.ws_url, live_server.keys["operator"], keys)
    conn = await asyncpg.connect(live_server.dsn)
    try:
        start_agents(live_server, sim, agent_factory)

        async def enough_before() -> bool:
            counts = await conn.fetch(
                "SELECT c.key, count(m.ts) AS n FROM characteristics c LEFT JOIN measurements m "
                "ON m.characteristic_id = c.id WHERE c.key = ANY($1) GROUP BY c.key", keys)
            return len(counts) == len(keys) and all(r["n"] >= BEFORE for r in counts)

        await wait_for(enough_before, 60, f"{BEFORE} in-control points per characteristic")

        # Inject every disturbance at once, then read where each one began.
        for case in CASES:
            sim.inject(case.variable, case.variable, machine=MACHINE, **case.inject)
        state = sim.state()
        now_index = {m["name"]: m["variables"] for m in state["machines"]}[MACHINE]
        start: dict[str, int] = {}
        for d in state["disturbances"]:
            start[d["variable"]] = now_index[d["variable"]]["index"] - d["samples_affected"]
        assert set(start) == {c.variable for c in CASES}

        target = max(start.values()) + AFTER

        async def observed_after() -> bool:
            # The simulator is past the window, and the OPC UA agent delivered up to there (the
            # Modbus agent uploads on the same cadence).
            hist = sim.history("shift", machine=MACHINE, limit=2000)
            at = [parse_ts(h["ts"]) for h in hist if h["index"] == target]
            if not at:
                return False
            newest = await conn.fetchval(
                "SELECT max(m.ts) FROM measurements m JOIN characteristics c "
                "ON c.id = m.characteristic_id WHERE c.key = $1", key("opcua", "shift"))
            return newest is not None and newest >= at[0]

        await wait_for(observed_after, AFTER / RATE_HZ + 30, f"{AFTER} samples after injection")
        await asyncio.sleep(1.0)  # let the last alarms reach the webhook receiver

        report: list[str] = []
        for case in CASES:
            s0 = start[case.variable]
            for protocol in PROTOCOLS:
                k = key(protocol, case.variable)
                rows = await stored(conn, k)
                assert rows, f"{k}: nothing stored"
                # Violations up to the last stored row read (the chain is still running).
                found = [v for v in await violations(conn, k) if v["ts"] <= rows[-1]["ts"]]
                # Read after the rows, so it holds every sample they can come from.
                history = sim.history(case.variable, machine=MACHINE, limit=2000)
                by_ts = {parse_ts(h["ts"]): h for h in history}
                by_index = {h["index"]: h for h in history}
                if protocol == "opcua":
                    # The simulator's samples: timestamp, value and quality, each once.
                    unknown = [r["ts"] for r in rows if r["ts"] not in by_ts]
                    assert not unknown, f"{k}: stored rows at {unknown[:3]} are no samples"
                    differ = [(r["ts"], r["value"], by_ts[r["ts"]]["value"]) for r in rows
                              if not same_value(r["value"], by_ts[r["ts"]]["value"])
                              or (r["quality"] == 2) != (by_ts[r["ts"]]["quality"] == "bad")]
                    assert not differ, f"{k}: stored values differ: {differ[:3]}"
                    index_of = {r["ts"]: by_ts[r["ts"]]["index"] for r in rows}
                    read = sorted(index_of.values())
                    missed = read[-1] - read[0] + 1 - len(read)
                    if case.variable in SUBSCRIBED:
                        assert missed == 0, f"{k}: {missed} samples missing over a subscription"
                    else:
                        report.append(f"{k}: {len(rows)} rows, {missed} samples missed by polls")
                    good = [(r["ts"], by_ts[r["ts"]]["value"]) for r in rows if r["quality"] != 2]
                else:
                    mapped = map_modbus(rows, history)
                    index_of = {r["ts"]: i for r, i in zip(rows, mapped, strict=True)}
                    good = [(r["ts"], r["value"]) for r in rows if r["quality"] != 2]
                    read = [i for i in mapped if i is not None]
                    missed = (read[-1] - read[0] + 1) - len(set(read)) if read else 0
                    report.append(f"{k}: {len(rows)} rows, {missed} samples never read")
                want_v = oracle([v for _, v in good], [t for t, _ in good], case.rules)
                got_v = {(v["rule"], v["ts"]) for v in found}
                assert got_v == want_v, (
                    f"{k}: recorded violations differ from spc_core on the "
                    f"{'simulator samples' if protocol == 'opcua' else 'stored series'}: "
                    f"missing {sorted(want_v - got_v)[:5]}, extra {sorted(got_v - want_v)[:5]}")

                after = [v for v in found if index_of.get(v["ts"], -1) >= s0]
                if case.variable == "dropout":
                    bad_after = [r for r in rows if r["quality"] == 2]
                    assert len(bad_after) >= 10, f"{k}: dropout stored {len(bad_after)} bad rows"
                    assert all(r["value"] is None for r in bad_after)
                    t_bad = bad_after[0]["ts"]
                    assert all(r["quality"] == 2 for r in rows if r["ts"] >= t_bad), \
                        f"{k}: a good row after the dropout began"
                    assert not [v for v in found if v["ts"] >= t_bad], \
                        f"{k}: violations recorded during the dropout"
                    report.append(f"{k}: {len(bad_after)} bad rows, no violation")
                    continue

                hits = [v for v in after if v["rule"] in case.expect[protocol]]
                seen = [(v["rule"], index_of.get(v["ts"])) for v in after][:10]
                assert hits, (f"{k}: none of {sorted(case.expect[protocol])} after the injection "
                              f"at sample {s0}; found {seen}")
                hit = hits[0]
                delay = index_of[hit["ts"]] - s0 + 1
                if protocol == "modbus" and case.variable == "stuck":
                    # Repeated values cannot be told apart: count samples by the clock.
                    t0 = parse_ts(by_index[s0]["ts"])
                    delay = math.floor((hit["ts"] - t0).total_seconds() * RATE_HZ) + 1
                assert delay <= case.window[protocol], (
                    f"{k}: {hit['rule']} at the {delay}th disturbed sample, window "
                    f"{case.window[protocol]}")
                report.append(f"{k}: {hit['rule']} at disturbed sample {delay}")
                if protocol == "opcua" and case.variable == "stuck":
                    x0 = by_index[s0 - 1]["value"]
                    stuck_rows = [r for r in rows if index_of[r["ts"]] >= s0]
                    assert all(same_value(r["value"], x0) for r in stuck_rows[:AFTER])
                    second, limit = ("nelson7", 15) if abs(x0 - MEAN) <= SIGMA else ("nelson8", 8)
                    limit += STUCK_SLACK
                    more = [v for v in after if v["rule"] == second]
                    assert more and index_of[more[0]["ts"]] - s0 + 1 <= limit, \
                        f"{k}: stuck at {x0}: {second} expected by the {limit}th stuck sample"
                    report.append(f"{k}: stuck at {x0 - MEAN:+.2f} sigma: {second} at "
                                  f"{index_of[more[0]['ts']] - s0 + 1}")
                if protocol == "modbus" and case.variable == "cycle":
                    n4 = [v for v in after if v["rule"] == "nelson4"]
                    report.append(f"{k}: nelson4 {'fired' if n4 else 'did not fire'} "
                                  "(not asserted over Modbus)")

                # The alarm carrying this violation, live and at the webhook.
                alarm_id = hit["alarm_id"]
                msg = ws.wait_for(lambda m, a=alarm_id: m.get("type") == "alarm"
                                  and m["alarm"]["id"] == a, timeout=10)
                assert msg["characteristic"] == k and msg["alarm"]["rule"] == hit["rule"]
                deadline = time.monotonic() + 15
                while True:
                    mine = [d for d in webhook_receiver.deliveries
                            if d.json["data"]["id"] == alarm_id]
                    if mine or time.monotonic() > deadline:
                        break
                    await asyncio.sleep(0.2)
                assert len(mine) == 1, f"{k}: alarm {alarm_id} delivered {len(mine)} times"
                webhook_signing.verify(secret, mine[0].headers, mine[0].body)
                data = mine[0].json["data"]
                assert (data["characteristic"], data["rule"], data["kind"]) == \
                    (k, hit["rule"], "spc")
                assert parse_ts(data["first_ts"]) <= hit["ts"]  # the episode it opened
        print("\n".join(report))
    finally:
        ws.close()
        await conn.close()
