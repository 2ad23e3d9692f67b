"""`spc analyze`: control limits, rule violations and capability for a CSV file.

The CSV has a header row. Each row is one measurement (or one sample for attributes charts):

* imr, ewma, cusum: one value per row, in time order (``--value-col``).
* xbar-r, xbar-s: one measurement per row; ``--subgroup-col`` says which subgroup it belongs to
  (subgroups in order of first appearance, sizes may differ).
* p, np: defectives per sample (``--value-col``) and sample size (``--size-col``).
* c: nonconformities per inspection unit (``--value-col``).
* u: nonconformities (``--value-col``) and units inspected (``--size-col``).

``--value-col`` may be left out when the file has a column named "value" or only one column.
Limits are phase I limits from the whole file (``--phase1-exclude`` iteratively drops points
flagged by the chosen rules and recomputes). ``--json`` prints one JSON object: ``chart`` (the
--chart given), ``plotted`` (the primary chart: "i", "xbar", "p", ...), ``center``, ``ucl``,
``lcl``, ``statistic`` and ``statistic_sigma`` (arrays, one entry per plotted point, null where
undefined), ``sigma`` (the process sigma of variables charts, null for attributes charts),
``sigma_method``, ``violations`` (rule id -> point indices, 0-based, of the points completing a
pattern), ``companion`` (the R, S or MR chart, with rule 1 only), ``excluded`` (phase I),
``labels`` (subgroup labels, or "line N") and ``capability`` when specs are given.

Bad input (missing column, non-numeric cell, empty file, subgroup of size 1 for Xbar charts,
defectives above the sample size, negative counts, NaN) exits with status 2 and one message
naming the line or column. CSV reading lives here; `spc_core` never does I/O.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from spc_core.capability import Capability, capability
from spc_core.charts import ChartResult
from spc_core.phases import CHART_KINDS, PhaseOneResult, fit_phase1
from spc_core.rules import resolve_rules

VARIABLES_CHARTS = ("imr", "xbar-r", "xbar-s", "ewma", "cusum")
SUBGROUP_CHARTS = ("xbar-r", "xbar-s")
SIZED_CHARTS = ("p", "np", "u")
COUNT_CHARTS = ("p", "np", "c", "u")


class InputError(Exception):
    """Bad input: reported as one line on stderr, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise InputError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="spc analyze",
        description="Control limits, rule violations and capability for a CSV file.",
    )
    parser.add_argument("file", metavar="FILE.csv", help="CSV file with a header row")
    parser.add_argument("--chart", required=True, choices=CHART_KINDS, help="chart type")
    parser.add_argument("--value-col", help="measurement / defectives / count column")
    parser.add_argument("--subgroup-col", help="subgroup label column (xbar-r, xbar-s)")
    parser.add_argument("--size-col", help="sample size column (p, np, u)")
    parser.add_argument(
        "--rules",
        help="rule set (we, nelson, aiag) or comma-separated rule ids such as "
        "'we1,nelson2:7'; default: we, or rule 1 for ewma; not for cusum",
    )
    parser.add_argument("--lsl", type=float, help="lower specification limit")
    parser.add_argument("--usl", type=float, help="upper specification limit")
    parser.add_argument("--target", type=float, help="target value (for Cpm)")
    parser.add_argument(
        "--phase1-exclude",
        action="store_true",
        help="phase I: iteratively drop points flagged by rule 1 (or by --rules when given) "
        "and recompute the limits; the exclusions are reported",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


# ---------------------------------------------------------------------------- reading the CSV


def read_csv(path: str) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """Header and (line number, row) pairs; blank lines are skipped."""
    try:
        with Path(path).open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = next(reader, None)
            if header is None or not any(h.strip() for h in header):
                raise InputError(f"{path}: the file is empty (expected a header row)")
            header = [h.strip() for h in header]
            rows = []
            for row in reader:
                if not any(cell.strip() for cell in row):
                    continue
                if len(row) != len(header):
                    raise InputError(
                        f"{path}: line {reader.line_num} has {len(row)} fields, the header "
                        f"has {len(header)}"
                    )
                rows.append((reader.line_num, dict(zip(header, row, strict=True))))
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a UTF-8 text file") from None
    except csv.Error as exc:
        raise InputError(f"{path}: malformed CSV ({exc})") from None
    if not rows:
        raise InputError(f"{path}: no data rows after the header")
    return header, rows


def _require_column(header: list[str], name: str, option: str) -> str:
    if name not in header:
        raise InputError(f"column {name!r} (from {option}) not found; columns: {', '.join(header)}")
    return name


def numeric_column(rows: list[tuple[int, dict[str, str]]], column: str) -> np.ndarray:
    """The column as floats; every cell must be a finite number."""
    out = np.empty(len(rows))
    for k, (line, row) in enumerate(rows):
        cell = row[column].strip()
        if cell == "":
            raise InputError(f"line {line}, column {column!r}: empty cell (missing value)")
        try:
            value = float(cell)
        except ValueError:
            raise InputError(f"line {line}, column {column!r}: {cell!r} is not a number") from None
        if math.isnan(value):
            raise InputError(f"line {line}, column {column!r}: NaN is not a valid value")
        if math.isinf(value):
            raise InputError(f"line {line}, column {column!r}: {cell!r} is not a finite number")
        out[k] = value
    return out


def _lines(rows: list[tuple[int, dict[str, str]]]) -> list[int]:
    return [line for line, _ in rows]


def _check_counts(values: np.ndarray, lines: list[int], column: str) -> None:
    for value, line in zip(values, lines, strict=True):
        if value < 0:
            raise InputError(f"line {line}, column {column!r}: negative count {value:g}")
        if value != round(value):
            raise InputError(f"line {line}, column {column!r}: count {value:g} is not whole")


class ChartInput:
    """What a chart needs from the CSV: data, sizes, and labels of the plotted points."""

    def __init__(self, data: np.ndarray, sizes: np.ndarray | None, labels: list[str]) -> None:
        self.data = data
        self.sizes = sizes
        self.labels = labels


def load_chart_input(args: argparse.Namespace) -> ChartInput:
    header, rows = read_csv(args.file)
    kind = args.chart
    if args.value_col is not None:
        value_col = _require_column(header, args.value_col, "--value-col")
    elif "value" in header:
        value_col = "value"
    elif len(header) == 1:
        value_col = header[0]
    else:
        raise InputError(f"--value-col is required: the file has columns {', '.join(header)}")
    if args.subgroup_col is not None and kind not in SUBGROUP_CHARTS:
        raise InputError(f"--subgroup-col applies to xbar-r and xbar-s, not to {kind}")
    if args.size_col is not None and kind not in SIZED_CHARTS:
        raise InputError(f"--size-col applies to p, np and u charts, not to {kind}")
    values = numeric_column(rows, value_col)
    lines = _lines(rows)
    if kind in SUBGROUP_CHARTS:
        if args.subgroup_col is None:
            raise InputError(f"--subgroup-col is required for {kind}")
        group_col = _require_column(header, args.subgroup_col, "--subgroup-col")
        return _subgroups(values, [row[group_col].strip() for _, row in rows], lines, kind)
    if kind in COUNT_CHARTS:
        _check_counts(values, lines, value_col)
    sizes = None
    if kind in SIZED_CHARTS:
        if args.size_col is None:
            raise InputError(f"--size-col is required for a {kind} chart (units per sample)")
        size_col = _require_column(header, args.size_col, "--size-col")
        sizes = numeric_column(rows, size_col)
        for size, value, line in zip(sizes, values, lines, strict=True):
            if size <= 0 or size != round(size):
                raise InputError(
                    f"line {line}, column {size_col!r}: sample size {size:g} must be a whole "
                    "number > 0"
                )
            if kind in ("p", "np") and value > size:
                raise InputError(
                    f"line {line}: defectives {value:g} exceed the sample size {size:g}"
                )
    return ChartInput(values, sizes, [f"line {line}" for line in lines])


def _subgroups(values: np.ndarray, labels: list[str], lines: list[int], kind: str) -> ChartInput:
    order: dict[str, list[float]] = {}
    first_line: dict[str, int] = {}
    for value, label, line in zip(values, labels, lines, strict=True):
        if label == "":
            raise InputError(f"line {line}: empty subgroup label")
        order.setdefault(label, []).append(float(value))
        first_line.setdefault(label, line)
    for label, members in order.items():
        if len(members) < 2:
            raise InputError(
                f"subgroup {label!r} (line {first_line[label]}) has 1 value; {kind} needs "
                "subgroups of at least 2"
            )
        if len(members) > 100:
            raise InputError(f"subgroup {label!r} has {len(members)} values; at most 100")
    width = max(len(m) for m in order.values())
    data = np.full((len(order), width), np.nan)
    for k, members in enumerate(order.values()):
        data[k, : len(members)] = members
    return ChartInput(data, None, list(order))


# ---------------------------------------------------------------------------- output


def _array(values: np.ndarray) -> list[float | None]:
    return [None if not np.isfinite(v) else float(v) for v in np.asarray(values, dtype=float)]


def _number(value: float | None) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def _chart_json(chart: ChartResult, violations: dict[str, np.ndarray]) -> dict[str, Any]:
    return {
        "chart_plotted": chart.chart,
        "statistic": _array(chart.statistic),
        "center": _array(chart.center),
        "ucl": _array(chart.ucl),
        "lcl": _array(chart.lcl),
        "statistic_sigma": _array(chart.sigma),
        "violations": {rule: [int(i) for i in idx] for rule, idx in violations.items()},
    }


def _capability_json(cap: Capability) -> dict[str, Any]:
    out = asdict(cap)
    out["warnings"] = list(cap.warnings)
    return json.loads(json.dumps(out, default=float), parse_constant=lambda _: None)


def _fmt(value: float | None, digits: int = 5) -> str:
    return "-" if value is None or not np.isfinite(value) else f"{value:.{digits}g}"


def _limits_line(name: str, chart: ChartResult) -> str:
    def span(arr: np.ndarray) -> str:
        finite = arr[np.isfinite(arr)]
        if finite.size == 0:
            return "-"
        lo, hi = finite.min(), finite.max()
        return _fmt(lo) if np.isclose(lo, hi, rtol=1e-12, atol=0) else f"{_fmt(lo)}..{_fmt(hi)}"

    return f"  {name:<7}{span(chart.center):>20}{span(chart.lcl):>20}{span(chart.ucl):>20}"


def _violation_lines(name: str, violations: dict[str, np.ndarray], labels: list[str]) -> list[str]:
    lines = []
    for rule, idx in violations.items():
        if len(idx) == 0:
            continue
        shown = ", ".join(f"{int(i)} ({labels[int(i)]})" for i in idx[:20])
        more = f", ... ({len(idx)} in all)" if len(idx) > 20 else ""
        lines.append(f"  {name} {rule}: {shown}{more}")
    return lines


def render_text(
    args: argparse.Namespace,
    charts: dict[str, ChartResult],
    violations: dict[str, dict[str, np.ndarray]],
    fit_result: PhaseOneResult,
    labels: list[str],
    cap: Capability | None,
) -> str:
    primary = next(iter(charts.values()))
    out = [f"{args.file}: {args.chart} chart, {len(primary.statistic)} points"]
    if np.isfinite(primary.process_sigma):
        out.append(f"process sigma {_fmt(primary.process_sigma)} ({primary.sigma_method})")
    out.append("")
    out.append(f"  {'chart':<7}{'center':>20}{'LCL':>20}{'UCL':>20}")
    out.extend(_limits_line(name, chart) for name, chart in charts.items())
    if fit_result.excluded:
        out.append("")
        out.append("Excluded from the limits (phase I):")
        out.extend(
            f"  {e.index} ({labels[e.index]}): {e.reason}, iteration {e.iteration}"
            for e in fit_result.excluded
        )
    out.append("")
    found = [line for name, v in violations.items() for line in _violation_lines(name, v, labels)]
    out.append("Violations (index and where):" if found else "Violations: none")
    out.extend(found)
    if cap is not None:
        out.append("")
        out.append(
            f"Capability (n = {cap.n}, LSL {_fmt(cap.lsl)}, USL {_fmt(cap.usl)}, "
            f"target {_fmt(cap.target)}):"
        )
        for label, value, ci in (
            ("Cp", cap.cp, cap.cp_ci),
            ("Cpk", cap.cpk, cap.cpk_ci),
            ("Pp", cap.pp, cap.pp_ci),
            ("Ppk", cap.ppk, cap.ppk_ci),
            ("Cpm", cap.cpm, None),
        ):
            interval = "" if ci is None else f"   95% CI {_fmt(ci.low, 3)} .. {_fmt(ci.high, 3)}"
            out.append(f"  {label:<5}{_fmt(value, 4):>10}{interval}")
        out.append(
            f"  PPM out of spec: within {_fmt(cap.ppm_within_total, 4)}, "
            f"overall {_fmt(cap.ppm_overall_total, 4)}"
        )
        if cap.normality is not None:
            out.append(f"  Anderson-Darling p = {_fmt(cap.normality.p_value, 3)}")
        out.extend(f"  warning: {w}" for w in cap.warnings)
    return "\n".join(out)


# ---------------------------------------------------------------------------- main


def analyze(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    kind = args.chart
    if kind == "cusum" and args.rules is not None:
        raise InputError("--rules does not apply to cusum (it signals when a sum exceeds h)")
    if kind not in VARIABLES_CHARTS and any(
        v is not None for v in (args.lsl, args.usl, args.target)
    ):
        raise InputError(f"--lsl/--usl/--target apply to variables charts, not to {kind}")
    if args.target is not None and args.lsl is None and args.usl is None:
        raise InputError("--target needs --lsl and/or --usl")
    for name in ("lsl", "usl", "target"):
        value = getattr(args, name)
        if value is not None and not math.isfinite(value):
            raise InputError(f"--{name} must be a finite number, got {value}")
    if args.lsl is not None and args.usl is not None and not args.lsl < args.usl:
        raise InputError(f"--lsl ({args.lsl:g}) must be below --usl ({args.usl:g})")
    rules = None
    if args.rules is not None:
        try:
            rules = resolve_rules(args.rules)
        except ValueError as exc:
            raise InputError(f"--rules: {str(exc).removeprefix('rules: ')}") from None
    chart_input = load_chart_input(args)
    try:
        fit_result = fit_phase1(
            kind,
            chart_input.data,
            sizes=chart_input.sizes,
            rules=rules,
            iterate=args.phase1_exclude,
        )
    except ValueError as exc:
        raise InputError(str(exc)) from None
    charts = dict(fit_result.charts)
    violations: dict[str, dict[str, np.ndarray]] = {}
    for position, (name, chart) in enumerate(charts.items()):
        violations[name] = chart.evaluate(rules if position == 0 else None)
    primary_name, primary = next(iter(charts.items()))
    cap = None
    if args.lsl is not None or args.usl is not None:
        values = chart_input.data
        try:
            cap = capability(
                values,
                lsl=args.lsl,
                usl=args.usl,
                target=args.target,
                sigma_within=primary.process_sigma,
            )
        except ValueError as exc:
            raise InputError(f"capability: {exc}") from None
    result: dict[str, Any] = {"chart": kind, **_chart_json(primary, violations[primary_name])}
    result["plotted"] = result.pop("chart_plotted")
    result["sigma"] = _number(primary.process_sigma)
    result["sigma_method"] = primary.sigma_method
    result["labels"] = chart_input.labels
    result["excluded"] = [asdict(e) for e in fit_result.excluded]
    if kind == "cusum":
        result["lower_statistic"] = _array(primary.extra["lower"])
    companions = list(charts.items())[1:]
    if companions:
        name, chart = companions[0]
        companion = _chart_json(chart, violations[name])
        result["companion"] = {"chart": companion.pop("chart_plotted"), **companion}
    if cap is not None:
        result["capability"] = _capability_json(cap)
    text = render_text(args, charts, violations, fit_result, chart_input.labels, cap)
    return result, text


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
        result, text = analyze(args)
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    except InputError as exc:
        print(f"spc analyze: error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, allow_nan=False))
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
