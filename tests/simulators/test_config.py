"""Line and scenario files: every shipped example loads, and bad files say where and what to fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulators.config import (
    ConfigError,
    load_line_config,
    load_scenario,
    parse_line_config,
)
from tests.fixtures.simulators import MACHINING_LINE, REPO

EXAMPLES = sorted((REPO / "simulators" / "examples").glob("*.yaml"))
SCENARIOS = sorted((REPO / "simulators" / "examples" / "scenarios").glob("*.yaml"))


def good_line() -> dict:
    return {
        "line": "L",
        "machines": [{"name": "M", "variables": [{"name": "x", "mean": 1.0, "sigma": 0.1}]}],
    }


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_example_line_loads(path: Path):
    config = load_line_config(path)
    assert config.machines and all(m.variables for m in config.machines)


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.name for p in SCENARIOS])
def test_every_scenario_fits_the_machining_line(path: Path):
    specs = load_scenario(path, load_line_config(MACHINING_LINE))
    assert len(specs) >= 3


def test_there_are_several_examples_and_scenarios():
    assert {p.name for p in EXAMPLES} >= {"machining_line.yaml", "grinding_line.yaml",
                                          "inspection_line.yaml"}
    assert len(SCENARIOS) >= 3


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "line.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "field", "fix"),
    [
        ("line: L\nmachines:\n  - name: M\n    variabels: []\n",
         "machines.0.variabels", "unknown field; remove it or check its spelling"),
        ("line: L\nmachines:\n  - name: M\n",
         "machines.0.variables", "required field is missing; add it"),
        ("line: L\nmachines:\n  - name: M\n    variables:\n"
         "      - {name: x, mean: abc, sigma: 1}\n",
         "machines.0.variables.0.mean", "valid number"),
        ("line: L\nmachines:\n  - name: M\n    variables:\n"
         "      - {name: x, mean: 1, sigma: 1, eu_range: [5, 1]}\n",
         "machines.0.variables.0", "low < high"),
        ("line: L\nmachines:\n  - name: M\n    variables:\n      - {name: x, mean: 1, sigma: 1}\n"
         "      - {name: x, mean: 2, sigma: 1}\n", "machines.0", "repeated: ['x']"),
        ("line: L\nmachines:\n"
         "  - {name: A, unit_id: 2, variables: [{name: x, mean: 1, sigma: 1}]}\n"
         "  - {name: B, variables: [{name: x, mean: 1, sigma: 1}]}\n",
         "(top level)", "Modbus unit ids must be unique, got [2, 2]"),
        ("line: L\nmachines:\n  - {name: A, variables: [{name: x, mean: 1, sigma: 1}]}\n"
         "disturbances:\n  - {kind: shift, variable: y}\n",
         "(top level)", "disturbances[0]: unknown variable 'y' on machine 'A'; it has ['x']"),
        ("line: L\nmachines:\n  - {name: A, variables: [{name: x, mean: 1, sigma: 1}]}\n"
         "disturbances:\n  - {kind: shift, variable: x, after_samples: 1, after_seconds: 2}\n",
         "disturbances.0", "either after_samples or after_seconds"),
        ("line: Line 1\nmachines:\n  - {name: A, variables: [{name: x, mean: 1, sigma: 1}]}\n",
         "line", "should match pattern"),
        ("line: L\nmachines:\n  - {name: A, part_mode: {cycle_seconds: 1},\n"
         "     variables: [{name: part_id, mean: 1, sigma: 1}]}\n",
         "machines.0", "['part_id'] name part-mode tags of this machine"),
    ],
    ids=["misspelled", "missing", "not-a-number", "range", "duplicate", "unit-ids",
         "unknown-target", "two-starts", "bad-name", "reserved-part-tag"],
)
def test_bad_line_files_name_the_file_the_field_and_the_fix(tmp_path, text, field, fix):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_line_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: invalid line configuration:")
    assert f"  {field}: " in message
    assert fix in message


def test_too_many_variables_suggests_splitting_the_machine():
    line = good_line()
    line["machines"][0]["variables"] = [
        {"name": f"v{i}", "mean": 0, "sigma": 1} for i in range(26)
    ]
    with pytest.raises(ConfigError, match=r"at most 25 variables per machine.*split the machine"):
        parse_line_config(line, "mine.yaml")


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("line: [unclosed\n", "not valid YAML"),
        ("- just\n- a list\n", "must be a YAML mapping with 'line' and 'machines'"),
    ],
)
def test_unreadable_line_files(tmp_path, text, needle):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=needle) as info:
        load_line_config(path)
    assert str(info.value).startswith(str(path))


def test_bad_scenarios_name_the_file_and_entry(tmp_path: Path):
    line = load_line_config(MACHINING_LINE)
    path = tmp_path / "scenario.yaml"
    path.write_text("disturbances:\n  - {kind: shift, variable: bore_diameter}\n"
                    "  - {kind: shfit, variable: bore_diameter}\n")
    with pytest.raises(ConfigError) as info:
        load_scenario(path, line)
    assert f"{path}: disturbances[1]" in str(info.value) and "kind" in str(info.value)
    path.write_text("disturbances:\n  - {kind: shift, machine: CNC1, variable: bore}\n")
    with pytest.raises(ConfigError, match=r"disturbances\[0\]: unknown variable 'bore'"):
        load_scenario(path, line)
    path.write_text("disturbance: []\n")
    with pytest.raises(ConfigError, match="a mapping with a 'disturbances' list"):
        load_scenario(path, line)
