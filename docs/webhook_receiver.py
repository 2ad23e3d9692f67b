#!/usr/bin/env python3
"""A webhook receiver for shopfloor-spc alarms, as an MES would run it (standard library only).

    python3 docs/webhook_receiver.py --port 9000 --secret whsec_... --out events.jsonl

For every POST it
1. verifies the Standard Webhooks signature: `webhook-signature: v1,<base64 HMAC-SHA256 of
   "{webhook-id}.{webhook-timestamp}.{body}">` under the subscription's secret (the `whsec_`
   secret the server returned once, at `POST /api/v1/webhooks`), compared in constant time;
   a mismatch answers 401 (a tampered or forged delivery);
2. checks `webhook-timestamp` is within `--tolerance` seconds (default 300) of its own clock;
   outside it answers 401 (a captured delivery replayed later);
3. deduplicates by `webhook-id`: the server retries a delivery (same id) until it gets a 2xx, so
   a receiver sees some deliveries twice (e.g. when its 2xx was lost). A known id is answered
   204 again (so the server stops retrying) but not processed again. Ids are kept in a SQLite
   file (`--seen`), so the dedupe survives a restart of the receiver; keep them at least as long
   as the server retries (SPC_WEBHOOK_MAX_ATTEMPTS x SPC_WEBHOOK_BACKOFF_MAX_S).

"Processing" here appends the event to `--out` (one JSON line per event, with its webhook-id);
replace `process()` with the MES call. The id is recorded after processing in the same SQLite
transaction order, so a crash between the two gives at-least-once processing, never a loss.
GET /stats answers {"accepted", "duplicates", "rejected"} counts (for monitoring and tests).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import hmac
import json
import sqlite3
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

MAX_BODY = 1 << 20


class Rejected(Exception):
    """The delivery does not verify; the message says why."""


def secret_key(secret: str) -> bytes:
    if secret.startswith("whsec_"):
        return base64.b64decode(secret[len("whsec_"):])
    return secret.encode()


def verify(key: bytes, headers: dict[str, str], body: bytes, tolerance_s: float,
           now: float | None = None) -> tuple[str, int]:
    """Return (webhook-id, timestamp) of a delivery whose signature and timestamp verify."""
    try:
        msg_id = headers["webhook-id"]
        ts = int(headers["webhook-timestamp"])
        signatures = headers["webhook-signature"].split()
    except (KeyError, ValueError) as exc:
        raise Rejected(f"missing or malformed webhook header: {exc}") from exc
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance_s:
        raise Rejected(f"timestamp {ts} is {current - ts:.0f} s off (tolerance {tolerance_s} s)")
    content = f"{msg_id}.{ts}.".encode() + body
    expected = base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
    for sig in signatures:
        version, _, value = sig.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            return msg_id, ts
    raise Rejected("no signature matches")


class Receiver:
    def __init__(self, secret: str, out: Path, seen: Path, tolerance_s: float) -> None:
        self.key = secret_key(secret)
        self.out = out
        self.tolerance_s = tolerance_s
        self.lock = threading.Lock()
        self.db = sqlite3.connect(seen, check_same_thread=False, isolation_level=None)
        self.db.execute("CREATE TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY, at REAL)")
        self.stats = {"accepted": 0, "duplicates": 0, "rejected": 0}

    def process(self, msg_id: str, event: dict) -> None:
        with self.out.open("a") as f:
            f.write(json.dumps({"webhook_id": msg_id, **event}) + "\n")
            f.flush()

    def handle(self, headers: dict[str, str], body: bytes) -> tuple[int, str]:
        try:
            msg_id, _ = verify(self.key, headers, body, self.tolerance_s)
            event = json.loads(body)
        except Rejected as exc:
            with self.lock:
                self.stats["rejected"] += 1
            return 401, str(exc)
        except ValueError:
            with self.lock:
                self.stats["rejected"] += 1
            return 400, "body is not JSON"
        with self.lock:  # one delivery at a time: the dedupe check and the record are atomic
            if self.db.execute("SELECT 1 FROM seen WHERE id = ?", (msg_id,)).fetchone():
                self.stats["duplicates"] += 1
                return 204, "duplicate"
            self.process(msg_id, event)
            self.db.execute("INSERT INTO seen VALUES (?, ?)", (msg_id, time.time()))
            self.stats["accepted"] += 1
        return 204, "ok"


def serve(receiver: Receiver, host: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            if length > MAX_BODY:
                self.send_error(413)
                return
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, reason = receiver.handle(headers, body)
            self.send_response(status)
            self.send_header("content-type", "text/plain")
            self.end_headers()
            self.wfile.write(reason.encode())

        def do_GET(self) -> None:
            if self.path != "/stats":
                self.send_error(404)
                return
            with receiver.lock:
                data = json.dumps(receiver.stats).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    return ThreadingHTTPServer((host, port), Handler)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=9000)
    p.add_argument("--secret", required=True, help="the subscription's whsec_ secret")
    p.add_argument("--out", type=Path, default=Path("events.jsonl"))
    p.add_argument("--seen", type=Path, default=Path("webhook-seen.sqlite"))
    p.add_argument("--tolerance", type=float, default=300.0, help="seconds")
    args = p.parse_args(argv)
    httpd = serve(Receiver(args.secret, args.out, args.seen, args.tolerance), args.host, args.port)
    print(f"webhook receiver on http://{args.host}:{httpd.server_address[1]}/", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        httpd.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
