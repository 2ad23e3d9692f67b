"""The operator UI in headless Chromium: time to first chart render for one day of 1 Hz data,
and frame times while points stream in at 10 per second.

    .venv/bin/python benchmarks/bench_dashboard.py [--points 86400] [--stream-seconds 20]

Everything runs on this machine, with the code the tests use: a private PostgreSQL + TimescaleDB
cluster (`server.core.localdb.LocalCluster`), `spc server` started by
`tests.fixtures.server.start_live_server`, Debian's /usr/bin/chromium driven by Playwright with
the tests' flags. The day of data goes in through the ingest API (SPC evaluated on ingest).

1. First render, one day: a fresh page load of `#/chart/day?last=86400` (the whole day, which
   the server reduces to each time bucket's extremes plus every violation), timed in the page
   from navigation start to the first animation frame after the chart exists
   (`performance.now()`), with the page's own marks for the chart request and the chart build
   and the request's resource timing; each load starts once the previous page has finished
   its requests (network idle). CPU seconds of the server, PostgreSQL and Chromium over the
   loads (psutil) are divided by the number of loads.
2. First render, raw: the same day fetched without downsampling (all 86,400 points) and drawn
   in the page: fetch + JSON, and ChartData + uPlot build + the first frame, timed separately.
3. Streaming: the live chart (the last 500 points, as operators see it) while a sender posts one
   sample every 100 ms through the ingest API; a requestAnimationFrame loop records every frame
   interval, and the page's `chart-update` measures give the work per point. Recorded once the
   page's start-up requests are over; first the same page with nothing arriving for
   `--control-seconds` (default: as long as the streaming), to tell frames this machine drops
   anyway from frames the updates cost.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from server.core.localdb import LocalCluster  # noqa: E402
from tests.fixtures.browser import CHROMIUM, FLAGS  # noqa: E402
from tests.fixtures.net import free_port  # noqa: E402
from tests.fixtures.server import start_live_server  # noqa: E402

KEY = "day"


def post(server, samples: list[dict]) -> None:
    r = httpx.post(f"{server.url}/api/v1/ingest", json={"agent": "bench", "samples": samples},
                   headers={**server.headers("agent"), "Idempotency-Key": str(uuid.uuid4())},
                   timeout=120)
    r.raise_for_status()


def load_day(server, points: int) -> float:
    import random

    with server.client("engineer") as c:
        c.post("/characteristics", json={"key": KEY, "name": "Bore diameter (1 Hz)",
                                         "unit": "mm", "baseline_points": 0,
                                         "lsl": 6.0, "usl": 14.0}).raise_for_status()
        c.post(f"/characteristics/{KEY}/limits", json={
            "center": 10.0, "sigma": 1.0, "reason": "bench",
            "effective_from": "2020-01-01T00:00:00Z"}).raise_for_status()
    rng = random.Random(0)
    t0 = datetime.now(UTC) - timedelta(seconds=points + 5)
    started = time.perf_counter()
    batch = 10_000
    for s in range(0, points, batch):
        post(server, [{"characteristic": KEY, "ts": (t0 + timedelta(seconds=i)).isoformat(),
                       "value": rng.gauss(10.0, 1.0)} for i in range(s, min(s + batch, points))])
    return time.perf_counter() - started


FIRST_RENDER = """async () => {
  const chart = () => document.querySelector('#chart-i');
  const painted = () => new Promise((ok) => requestAnimationFrame(() => requestAnimationFrame(
    () => ok(performance.now()))));
  const when = (ready) => new Promise((ok) => {
    if (ready()) return ok();
    const mo = new MutationObserver(() => { if (ready()) { mo.disconnect(); ok(); } });
    mo.observe(document.body, { subtree: true, childList: true, attributes: true });
  });
  let first = null;
  const firstSeen = when(() => chart()?.querySelector('canvas')).then(painted)
    .then((t) => { first = t; });
  await when(() => chart()?.dataset.mode === 'range' && chart().querySelector('canvas'));
  const total = await painted();
  await firstSeen;
  const m = (n) => performance.getEntriesByName(n).map((e) => e.duration);
  // the whole range's request, as the network stack saw it
  const req = performance.getEntriesByType('resource')
    .filter((e) => e.name.includes('/chart?') && e.name.includes('downsample=true')).at(-1);
  return { first, total, fetch: m('chart-fetch').at(-1), draw: m('chart-draw'),
           reqStart: req?.startTime, reqEnd: req?.responseEnd, bytes: req?.encodedBodySize,
           points: Number(document.querySelector('[data-field=points]').textContent),
           downsampled: chart().dataset.downsampled };
}"""

RAW_RENDER = """async ([key, start, end]) => {
  const { ChartData, drawCharts } = await import('./chart.js');
  const apiKey = localStorage.getItem('spc.apiKey');
  const t0 = performance.now();
  const url = `/api/v1/characteristics/${key}/chart?limit=200000&start=${start}&end=${end}`;
  const res = await fetch(url, { headers: { Authorization: `Bearer ${apiKey}` } });
  const body = await res.json();
  const t1 = performance.now();
  const host = document.createElement('div');
  host.style.width = '1334px';
  const comp = document.createElement('div');
  document.body.append(host, comp);
  const data = new ChartData(body.points);
  const charts = drawCharts(host, comp, data, { kind: 'imr', unit: 'mm', versions: body.limits });
  await new Promise((ok) => requestAnimationFrame(() => requestAnimationFrame(ok)));
  const t2 = performance.now();
  charts.destroy(); host.remove(); comp.remove();
  return { points: body.points.length, fetch: t1 - t0, render: t2 - t1 };
}"""

FRAMES_START = """() => {
  // one recording at a time: a new start ends the previous loop and observer
  const gen = window.__gen = (window.__gen || 0) + 1;
  window.__frames = [];
  window.__long = [];
  let last = performance.now();
  const loop = (t) => {
    if (window.__gen !== gen) return;
    window.__frames.push(t - last); last = t;
    requestAnimationFrame(loop);
  };
  window.__observer?.disconnect();
  window.__observer = new PerformanceObserver(
    (l) => l.getEntries().forEach((e) => window.__long.push(e.duration)));
  window.__observer.observe({ type: 'longtask' });
  performance.clearMeasures('chart-update');
  requestAnimationFrame((t) => { last = t; requestAnimationFrame(loop); });
}"""

FRAMES_STOP = """() => {
  window.__gen += 1;
  window.__observer.disconnect();
  return { frames: window.__frames, longtasks: window.__long,
           updates: performance.getEntriesByName('chart-update').map((e) => e.duration) };
}"""


def cpu_seconds(processes) -> dict[int, float]:
    """user + system CPU seconds of each process (by pid) that still exists."""
    out = {}
    for proc in processes:
        try:
            t = proc.cpu_times()
            out[proc.pid] = t.user + t.system
        except psutil.Error:
            pass
    return out


def components(server, cluster) -> dict[str, list]:
    """The processes of the server, PostgreSQL and Chromium (renderer, GPU, browser...)."""
    me = psutil.Process()
    browser = [p for p in me.children(recursive=True)
               if "chrom" in p.name().lower() or "headless" in p.name().lower()]
    srv = psutil.Process(server.process.pid)
    postmaster = psutil.Process(int((cluster.data_dir / "postmaster.pid").read_text().split()[0]))
    return {"server": [srv, *srv.children(recursive=True)],
            "postgres": [postmaster, *postmaster.children(recursive=True)],
            "chromium": browser}


def cpu_delta(before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]
              ) -> dict[str, float]:
    return {k: sum(t - before[k].get(pid, 0.0) for pid, t in after[k].items()) for k in after}


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--points", type=int, default=86_400)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--stream-seconds", type=float, default=20.0)
    ap.add_argument("--control-seconds", type=float, default=None,
                    help="seconds of the idle live page recorded first (default: as streaming)")
    ap.add_argument("--headed-flags", default="", help="extra Chromium flags, comma-separated")
    ap.add_argument("--reduce-in-database-above", type=int, default=None, metavar="N",
                    help="the server's SPC_CHART_REDUCE_IN_DATABASE_ABOVE (default: its own, "
                         "300,000); e.g. 1000 to reduce the day in SQL")
    args = ap.parse_args(argv)
    if args.control_seconds is None:
        args.control_seconds = args.stream_seconds

    from playwright.sync_api import sync_playwright

    base = Path(tempfile.mkdtemp(prefix="spc-bench-ui-"))
    base.chmod(0o755)
    cluster = LocalCluster(base / "pg", free_port())
    cluster.start()
    server = None
    results: dict = {}
    try:
        env = ({} if args.reduce_in_database_above is None else
               {"SPC_CHART_REDUCE_IN_DATABASE_ABOVE": str(args.reduce_in_database_above)})
        server = start_live_server(cluster, base, **env)
        results["ingest_s"] = load_day(server, args.points)
        print(f"ingested {args.points} points via the API in {results['ingest_s']:.1f} s")
        flags = FLAGS + [f for f in args.headed_flags.split(",") if f]
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=flags)
            context = browser.new_context(viewport={"width": 1366, "height": 768})
            page = context.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{server.url}/ui/#key={server.keys['operator']}")
            page.wait_for_selector(".overview .tile")

            first = []
            procs = components(server, cluster)
            before = {k: cpu_seconds(v) for k, v in procs.items()}
            for _ in range(args.repeat):
                page.goto(f"{server.url}/ui/?r={uuid.uuid4().hex}#/chart/{KEY}?last=86400")
                first.append(page.evaluate(FIRST_RENDER))
                # the page finishes what it does after the chart (the tiles' data, the alarm
                # count) before the next load, which would otherwise find the server busy
                page.wait_for_selector("#alarm-count[data-count]", state="attached")
                page.wait_for_load_state("networkidle")
            procs = components(server, cluster)  # Chromium starts a renderer per page load
            after = {k: cpu_seconds(v) for k, v in procs.items()}
            results["first_render"] = first
            results["first_render_cpu_s"] = {k: v / args.repeat
                                             for k, v in cpu_delta(before, after).items()}
            results["load_average"] = os.getloadavg()

            end = datetime.now(UTC) + timedelta(seconds=1)
            start = end - timedelta(days=1, seconds=60)
            raw = [page.evaluate(RAW_RENDER, [KEY, start.isoformat().replace("+00:00", "Z"),
                                              end.isoformat().replace("+00:00", "Z")])
                   for _ in range(3)]
            results["raw_render"] = raw

            page.goto(f"{server.url}/ui/?r={uuid.uuid4().hex}#/chart/{KEY}")
            page.wait_for_selector("#chart-i[data-mode=live] canvas")
            page.wait_for_selector("#connection[data-state=live]")
            page.wait_for_selector("#alarm-count[data-count]", state="attached")
            page.wait_for_load_state("networkidle")  # the page's start-up is over
            if args.control_seconds:
                # the same page with nothing arriving: the frames this machine drops anyway
                page.evaluate(FRAMES_START)
                time.sleep(args.control_seconds)
                results["control"] = page.evaluate(FRAMES_STOP)
            page.evaluate(FRAMES_START)
            stop = threading.Event()
            sent = [0]

            def sender() -> None:
                rng = __import__("random").Random(1)
                nxt = time.monotonic()
                while not stop.is_set():
                    post(server, [{"characteristic": KEY, "ts": datetime.now(UTC).isoformat(),
                                   "value": rng.gauss(10.0, 1.0)}])
                    sent[0] += 1
                    nxt += 0.1
                    time.sleep(max(0.0, nxt - time.monotonic()))

            t = threading.Thread(target=sender)
            t.start()
            time.sleep(args.stream_seconds)
            stop.set()
            t.join()
            time.sleep(0.5)
            stream = page.evaluate(FRAMES_STOP)
            results["stream"] = {"sent": sent[0], **stream}
            results["errors"] = errors
            browser.close()
    finally:
        if server:
            server.stop()
        cluster.stop("immediate")
        shutil.rmtree(base, ignore_errors=True)

    med = lambda xs: statistics.median(xs)  # noqa: E731
    fr = results["first_render"]
    print(f"\n1. first render of one day ({args.points} points at 1 Hz), fresh page load, "
          f"{len(fr)} runs (median, min-max):")
    print(f"   navigation -> first chart painted (the range's newest 500 points): "
          f"{med([r['first'] for r in fr]):.0f} ms "
          f"({min(r['first'] for r in fr):.0f}-{max(r['first'] for r in fr):.0f})")
    print(f"   navigation -> whole day painted: {med([r['total'] for r in fr]):.0f} ms "
          f"({min(r['total'] for r in fr):.0f}-{max(r['total'] for r in fr):.0f})")
    print(f"   of which: navigation -> the day's request sent "
          f"{med([r['reqStart'] for r in fr]):.0f} ms; the request "
          f"{med([r['reqEnd'] - r['reqStart'] for r in fr]):.0f} ms "
          f"({fr[0]['bytes'] / 1e6:.2f} MB); response -> painted "
          f"{med([r['total'] - r['reqEnd'] for r in fr]):.0f} ms (of which ChartData + uPlot "
          f"build {med([r['draw'][-1] for r in fr]):.1f} ms, the rest JSON, drawing, "
          f"compositing); plotted {fr[0]['points']} points (downsampled={fr[0]['downsampled']})")
    c = results["first_render_cpu_s"]
    print(f"   CPU per page load: server {c['server'] * 1000:.0f} ms, PostgreSQL "
          f"{c['postgres'] * 1000:.0f} ms, Chromium {c['chromium'] * 1000:.0f} ms (all its "
          f"processes); load average during the runs {results['load_average'][0]:.1f} "
          f"on {os.cpu_count()} CPUs")
    raw = results["raw_render"]
    print(f"2. raw day without downsampling ({raw[0]['points']} points): request + JSON "
          f"{med([r['fetch'] for r in raw]):.0f} ms, build + first frame "
          f"{med([r['render'] for r in raw]):.0f} ms")
    s = results["stream"]
    frames = s["frames"][1:]
    upd = s["updates"]
    budget = 1000 / 60
    dropped = sum(1 for f in frames if f > budget * 1.5)
    print(f"3. streaming {s['sent']} points in {args.stream_seconds:.0f} s "
          f"({s['sent'] / args.stream_seconds:.1f}/s), {len(upd)} chart updates:")
    print(f"   frames: {len(frames)} ({len(frames) / (sum(frames) / 1000):.1f} fps), interval "
          f"median {med(frames):.2f} ms, p99 {pct(frames, 99):.2f} ms, max {max(frames):.2f} ms;"
          f" frames over 1.5x 16.7 ms: {dropped}")
    if upd:
        print(f"   work per point (chart-update): median {med(upd):.2f} ms, p99 "
              f"{pct(upd, 99):.2f} ms, max {max(upd):.2f} ms")
    lt = s["longtasks"]
    print(f"   main-thread tasks over 50 ms: {len(lt)}"
          + (f" (longest {max(lt):.0f} ms)" if lt else ""))
    if "control" in results:
        cf = results["control"]["frames"][1:]
        clt = results["control"]["longtasks"]
        print(f"   control, the same page for {args.control_seconds:.0f} s with nothing arriving: "
              f"{len(cf)} frames ({len(cf) / (sum(cf) / 1000):.1f} fps), max {max(cf):.2f} ms, "
              f"frames over 1.5x 16.7 ms: {sum(1 for f in cf if f > budget * 1.5)}, "
              f"main-thread tasks over 50 ms: {len(clt)}")
    print(f"page errors: {results['errors'] or 'none'}")
    out = ROOT / "test-artifacts" / "bench_dashboard.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
