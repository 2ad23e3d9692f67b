"""Benchmark of spc_core: I-MR limits plus all eight Nelson rules, and the streaming evaluator.

    .venv/bin/python benchmarks/bench_spc_core.py [--points 10000000] [--repeat 5]
        [--published-python /tmp/bench-venv/bin/python] [--published-points 1000000]

Measures, in one run and on the same standard-normal series (seed 0):

1. spc_core: `imr_limits` + `evaluate_rules(..., "nelson")` on a 10,000,000-point series.
2. A straightforward numpy implementation of the same eight rules, written below as the baseline
   (sliding windows with .all(), convolution counts: what one writes first with numpy). Its output
   is checked equal to spc_core's, so both compute exactly the same thing.
3. Optionally a published package, NelsonCheck 0.4 (PyPI), which implements all eight Nelson
   rules with pandas. It is installed in a separate virtual environment (it pulls in pandas and
   plotly) given by --published-python, and timed there on the first --published-points points of
   the same series, because it runs at tens of thousands of points per second. Its conventions
   differ (it marks every point of a pattern, not the completing one, and its trend rule groups
   differently), so only the throughput is compared.
4. The streaming evaluator: 10,000 series receiving one new point each, one `update_all` call.

Timings are the median of --repeat runs (the first, warm-up, run is discarded) with
time.perf_counter on one process; numpy runs these element-wise operations on one core.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import time
from collections.abc import Callable

import numpy as np

from spc_core.charts import imr_limits
from spc_core.rules import evaluate_rules
from spc_core.streaming import StreamingEvaluator

NELSON = [f"nelson{i}" for i in range(1, 9)]


def _windows_all(mask: np.ndarray, length: int) -> np.ndarray:
    """True at i when mask[i - length + 1 .. i] are all True (False for i < length - 1)."""
    out = np.zeros(len(mask), dtype=bool)
    if len(mask) >= length:
        out[length - 1 :] = np.lib.stride_tricks.sliding_window_view(mask, length).all(axis=1)
    return out


def _window_count(mask: np.ndarray, length: int) -> np.ndarray:
    return np.convolve(mask.astype(np.int32), np.ones(length, dtype=np.int32))[: len(mask)]


def baseline_nelson(x: np.ndarray, center: float, sigma: float) -> dict[str, np.ndarray]:
    """The eight Nelson rules written the straightforward numpy way."""
    d = x - center
    above, below = d > 0, d < 0
    step = np.diff(x, prepend=np.nan)
    up, down = step > 0, step < 0
    turn = np.zeros(len(x), dtype=bool)
    turn[1:] = (up[1:] & down[:-1]) | (down[1:] & up[:-1])
    a2, b2 = d > 2 * sigma, d < -2 * sigma
    a1, b1 = d > sigma, d < -sigma
    rules = {
        "nelson1": np.abs(d) > 3 * sigma,
        "nelson2": _windows_all(above, 9) | _windows_all(below, 9),
        "nelson3": _windows_all(up, 5) | _windows_all(down, 5),
        "nelson4": _windows_all(turn, 12),
        "nelson5": (a2 & (_window_count(a2, 3) >= 2)) | (b2 & (_window_count(b2, 3) >= 2)),
        "nelson6": (a1 & (_window_count(a1, 5) >= 4)) | (b1 & (_window_count(b1, 5) >= 4)),
        "nelson7": _windows_all(np.abs(d) <= sigma, 15),
        "nelson8": _windows_all(np.abs(d) > sigma, 8),
    }
    return {rule: np.flatnonzero(mask) for rule, mask in rules.items()}


def spc_core_run(x: np.ndarray) -> dict[str, np.ndarray]:
    limits = imr_limits(x)
    return evaluate_rules(x, limits.center, limits.sigma, "nelson")


def baseline_run(x: np.ndarray) -> dict[str, np.ndarray]:
    # Same limits as spc_core (mean and MR-bar/d2), computed the plain way.
    center = float(x.mean())
    sigma = float(np.abs(np.diff(x)).mean() / 1.1283791670955126)
    return baseline_nelson(x, center, sigma)


def median_seconds(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


PUBLISHED_SCRIPT = """
import json, sys, time
import numpy as np
from NelsonCheck.NelsonCheck import NelsonCheck
n, center, ucl, lcl = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
x = np.random.default_rng(0).standard_normal(int(sys.argv[5]))[:n]
start = time.perf_counter()
check = NelsonCheck(x, CL=center, LCL=lcl, UCL=ucl)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "rules": sorted(str(v.rule) for v in check.violations)}))
"""


def published_run(python: str, x: np.ndarray, n: int) -> dict[str, object]:
    limits = imr_limits(x[:n])
    proc = subprocess.run(
        [python, "-c", PUBLISHED_SCRIPT, str(n), str(limits.center), str(limits.ucl),
         str(limits.lcl), str(len(x))],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(proc.stdout)


def streaming_run(n_series: int, repeat: int) -> float:
    rng = np.random.default_rng(1)
    evaluator = StreamingEvaluator("nelson", n_series=n_series)
    for _ in range(20):  # fill the windows so the evaluation is the steady state
        evaluator.update_all(rng.standard_normal(n_series), 0.0, 1.0)
    batches = rng.standard_normal((repeat * 20 + 1, n_series))
    row = iter(batches)
    return median_seconds(lambda: evaluator.update_all(next(row), 0.0, 1.0), repeat * 20)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--published-python", help="python of a venv with NelsonCheck installed")
    parser.add_argument("--published-points", type=int, default=1_000_000)
    parser.add_argument("--series", type=int, default=10_000)
    args = parser.parse_args()

    x = np.random.default_rng(0).standard_normal(args.points)
    ours, base = spc_core_run(x), baseline_run(x)
    for rule in NELSON:
        if not np.array_equal(ours[rule], base[rule]):
            raise SystemExit(f"baseline and spc_core disagree on {rule}")
    t_ours = median_seconds(lambda: spc_core_run(x), args.repeat)
    t_base = median_seconds(lambda: baseline_run(x), args.repeat)
    n = args.points
    print(f"python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}")
    print(f"series of {n:,} points, limits + all eight Nelson rules (median of {args.repeat}):")
    print(f"  spc_core          {t_ours:8.3f} s  {n / t_ours / 1e6:8.1f} M points/s")
    print(
        f"  numpy baseline    {t_base:8.3f} s  {n / t_base / 1e6:8.1f} M points/s"
        f"   spc_core is {t_base / t_ours:.1f}x faster (identical output)"
    )
    print(f"  violations found: {sum(len(v) for v in ours.values()):,}")
    if args.published_python:
        m = min(args.published_points, n)
        result = published_run(args.published_python, x, m)
        rate = m / float(result["seconds"])  # type: ignore[arg-type]
        print(
            f"  NelsonCheck 0.4   {result['seconds']:8.3f} s  {rate / 1e6:8.3f} M points/s"
            f" (on {m:,} points)   spc_core is {n / t_ours / rate:,.0f}x faster"
        )
    t_stream = streaming_run(args.series, args.repeat)
    print(
        f"streaming: {args.series:,} series x 1 new point, all eight Nelson rules: "
        f"{t_stream * 1e3:.2f} ms per call, {args.series / t_stream / 1e6:.2f} M points/s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
