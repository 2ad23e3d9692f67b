"""`spc analyze` on CSV files written to tmp_path: JSON and text output, and every kind of bad
input exiting with status 2 and one message naming the line or column."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from spc_cli.analyze import main
from tests.spc_core.reference_data import (
    OJ_CANS_DEFECTIVES,
    PCB_NONCONFORMITIES,
    PISTON_RING_PHASE1,
)

SPC = Path(sys.executable).parent / "spc"


def write(tmp_path: Path, text: str, name: str = "data.csv") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def piston_csv(tmp_path: Path) -> str:
    lines = ["sample,diameter"]
    for i, row in enumerate(PISTON_RING_PHASE1):
        lines.extend(f"S{i + 1},{v}" for v in row)
    return write(tmp_path, "\n".join(lines) + "\n", "piston.csv")


def run_json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict:
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_xbar_r_json_matches_montgomery(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Montgomery 6th ed., Example 6.1 (piston rings): center 74.001, UCL 74.014, LCL 73.988.
    out = run_json(
        capsys,
        [piston_csv(tmp_path), "--chart", "xbar-r", "--subgroup-col", "sample",
         "--value-col", "diameter", "--lsl", "73.95", "--usl", "74.05"],
    )  # fmt: skip
    assert out["chart"] == "xbar-r"
    assert out["plotted"] == "xbar"
    assert len(out["statistic"]) == len(out["ucl"]) == len(out["lcl"]) == len(out["center"]) == 25
    assert round(out["center"][0], 3) == 74.001
    assert round(out["ucl"][0], 3) == 74.014
    assert round(out["lcl"][0], 3) == 73.988
    assert out["sigma"] == pytest.approx(
        np.ptp(PISTON_RING_PHASE1, axis=1).mean() / 2.325929, rel=1e-5
    )
    assert set(out["violations"]) == {"we1", "we2", "we3", "we4"}
    assert out["companion"]["chart"] == "r"
    assert round(out["companion"]["ucl"][0], 3) == 0.048
    assert out["labels"][:2] == ["S1", "S2"]
    assert out["capability"]["cp"] == pytest.approx(0.1 / (6 * out["sigma"]))


def test_p_chart_json_and_phase1_exclusion(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = "defectives,n\n" + "".join(f"{d},50\n" for d in OJ_CANS_DEFECTIVES)
    path = write(tmp_path, text)
    out = run_json(capsys, [path, "--chart", "p", "--value-col", "defectives", "--size-col", "n",
                            "--rules", "nelson1"])  # fmt: skip
    # Montgomery 6th ed., Example 7.1: UCL 0.4102, samples 15 and 23 (indices 14, 22) beyond it.
    assert round(out["ucl"][0], 4) == 0.4102
    assert out["violations"] == {"nelson1": [14, 22]}
    assert out["sigma"] is None
    revised = run_json(capsys, [path, "--chart", "p", "--value-col", "defectives", "--size-col",
                                "n", "--phase1-exclude", "--rules", "nelson1"])  # fmt: skip
    assert [e["index"] for e in revised["excluded"]] == [14, 22, 20]
    assert revised["excluded"][0]["reason"] == "p:nelson1"


def test_imr_default_value_column_text_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # NIST e-Handbook 6.3.2.3 flow-rate example: UCL 55.80, LCL 45.82.
    values = [49.6, 47.6, 49.9, 51.3, 47.8, 51.2, 52.6, 52.4, 53.6, 52.1, 60.0]
    path = write(tmp_path, "value\n" + "\n".join(map(str, values)) + "\n")
    assert main([path, "--chart", "imr", "--usl", "58"]) == 0
    text = capsys.readouterr().out
    assert "imr chart, 11 points" in text
    assert "we1: 10 (line 12)" in text
    assert "Cpk" in text and "Anderson-Darling" in text
    out = run_json(capsys, [path, "--chart", "imr"])
    assert out["companion"]["chart"] == "mr"
    assert out["companion"]["statistic"][0] is None  # no moving range for the first point
    assert out["violations"]["we1"] == [10]


def test_c_u_ewma_cusum_charts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "count\n" + "".join(f"{c}\n" for c in PCB_NONCONFORMITIES))
    c = run_json(capsys, [path, "--chart", "c", "--rules", "nelson1"])
    assert c["violations"]["nelson1"] == [5, 19]  # Montgomery 6th ed., Example 7.3
    u_path = write(tmp_path, "count,units\n4,2\n6,2\n3,1\n10,2\n", "u.csv")
    u = run_json(capsys, [u_path, "--chart", "u", "--size-col", "units", "--value-col", "count"])
    assert u["statistic"] == [2.0, 3.0, 3.0, 5.0]
    x_path = write(tmp_path, "x\n" + "".join(f"{v}\n" for v in [10, 11, 9, 10, 12, 15, 16, 17]))
    ewma = run_json(capsys, [x_path, "--chart", "ewma"])
    assert list(ewma["violations"]) == ["nelson1"]
    cusum = run_json(capsys, [x_path, "--chart", "cusum"])
    assert set(cusum["violations"]) == {"cusum_upper", "cusum_lower"}
    assert len(cusum["lower_statistic"]) == 8


def test_np_and_xbar_s(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "d,n\n3,50\n5,50\n4,50\n9,50\n")
    out = run_json(capsys, [path, "--chart", "np", "--value-col", "d", "--size-col", "n"])
    assert out["center"][0] == pytest.approx(21 / 4)
    s = run_json(capsys, [piston_csv(tmp_path), "--chart", "xbar-s", "--subgroup-col", "sample",
                          "--value-col", "diameter"])  # fmt: skip
    assert s["companion"]["chart"] == "s"
    assert round(s["ucl"][0], 3) == 74.014


BAD_INPUTS = [
    # (csv text, extra argv, expected message fragment)
    ("value\n1\n2\n", ["--chart", "imr", "--value-col", "width"],
     "column 'width' (from --value-col) not found"),
    ("value\n1\nabc\n3\n", ["--chart", "imr"], "line 3, column 'value': 'abc' is not a number"),
    ("", ["--chart", "imr"], "the file is empty"),
    ("value\n", ["--chart", "imr"], "no data rows"),
    ("g,v\n1,2.0\n1,2.5\n2,3.0\n", ["--chart", "xbar-r", "--subgroup-col", "g", "--value-col", "v"],
     "subgroup '2' (line 4) has 1 value"),
    ("d,n\n3,10\n12,10\n", ["--chart", "p", "--value-col", "d", "--size-col", "n"],
     "line 3: defectives 12 exceed the sample size 10"),
    ("c\n3\n-1\n", ["--chart", "c"], "line 3, column 'c': negative count -1"),
    ("value\n1\nNaN\n3\n", ["--chart", "imr"], "line 3, column 'value': NaN is not a valid value"),
    ("value\n1\n\n3\n", ["--chart", "imr"], None),  # a blank line is skipped, not an error
    ("a,b\n1,\n2,3\n", ["--chart", "imr", "--value-col", "b"], "line 2, column 'b': empty cell"),
    ("a,b\n1,2\n", ["--chart", "imr"], "--value-col is required"),
    ("d\n3\n", ["--chart", "p", "--value-col", "d"], "--size-col is required"),
    ("d,n\n3,0\n", ["--chart", "p", "--value-col", "d", "--size-col", "n"], "sample size 0"),
    ("c\n3\n2.5\n", ["--chart", "c"], "count 2.5 is not whole"),
    ("value\n1\n2\n", ["--chart", "imr", "--rules", "we9"], "--rules: unknown rule"),
    ("value\n1\n2\n", ["--chart", "imr", "--lsl", "5", "--usl", "1"], "--lsl (5) must be below"),
    ("c\n3\n4\n", ["--chart", "c", "--usl", "5"], "apply to variables charts"),
    ("value\n1\n2\n", ["--chart", "imr", "--target", "1"], "--target needs --lsl"),
    ("value\n1\n2\n", ["--chart", "cusum", "--rules", "we"], "--rules does not apply to cusum"),
    ("value\n1\n2\n", ["--chart", "spline"], "invalid choice: 'spline'"),
    ("value\n3\n3\n3\n", ["--chart", "imr"], "zero variation"),
    ("v,w\n1,2,3\n", ["--chart", "imr", "--value-col", "v"], "line 2 has 3 fields"),
    ("value\n1\n2\n", ["--chart", "imr", "--subgroup-col", "g"], "--subgroup-col applies to"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "argv", "message"), BAD_INPUTS)
def test_bad_input_exits_2_with_one_clear_message(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    text: str,
    argv: list[str],
    message: str | None,
) -> None:
    code = main([write(tmp_path, text), *argv])
    err = capsys.readouterr().err
    if message is None:
        assert code == 0
        return
    assert code == 2
    assert message in err
    assert err.startswith("spc analyze: error:") or "usage" in err or "invalid choice" in err
    assert "Traceback" not in err


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "nope.csv"), "--chart", "imr"]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "--phase1-exclude" in capsys.readouterr().out


def test_installed_console_command_json(tmp_path: Path) -> None:
    proc = subprocess.run(
        [str(SPC), "analyze", piston_csv(tmp_path), "--chart", "xbar-r", "--subgroup-col",
         "sample", "--value-col", "diameter", "--json"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert round(out["ucl"][0], 3) == 74.014


@pytest.mark.parametrize(
    ("text", "argv", "message"),
    [
        ("value\n1\nNaN\n", ["--chart", "imr"], "NaN is not a valid value"),
        ("d,n\n11,10\n", ["--chart", "p", "--value-col", "d", "--size-col", "n"], "exceed"),
        ("value\n1\n2\n", ["--chart", "imr", "--value-col", "missing"], "not found"),
    ],
)
def test_installed_console_command_bad_input(
    tmp_path: Path, text: str, argv: list[str], message: str
) -> None:
    proc = subprocess.run(
        [str(SPC), "analyze", write(tmp_path, text), *argv],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 2
    assert message in proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stdout == ""
