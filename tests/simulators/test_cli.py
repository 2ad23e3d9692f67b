"""`spc simulate` as a command: the map, bad input, and the client subcommands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulators.cli import main
from spc_cli.main import main as spc_main
from tests.fixtures.simulators import MACHINING_LINE, RunningSimulator, free_port


def test_print_map_names_every_variable_and_the_contract_block(capsys):
    assert spc_main(["simulate", "--config", str(MACHINING_LINE), "--print-map"]) == 0
    out = capsys.readouterr().out
    assert "machine CNC1: unit id 1" in out
    for address, name in [(0, "bore_diameter"), (2, "surface_roughness"), (4, "spindle_temp")]:
        assert any(
            line.split()[:5] == ["holding+input", str(address), "2", "float32", "ABCD"]
            and name in line
            for line in out.splitlines()
        ), f"{name} not at float32 ABCD {address}"


def test_missing_config_file_is_named(capsys, tmp_path: Path):
    missing = tmp_path / "nope.yaml"
    assert main(["--config", str(missing), "--print-map"]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "cannot read" in err


def test_bad_field_in_line_file_names_file_and_field(capsys, tmp_path: Path):
    bad = tmp_path / "line.yaml"
    bad.write_text(
        "line: L\nmachines:\n  - name: M\n    variables:\n"
        "      - {name: x, mean: 1.0, sigma: -2}\n"
    )
    assert main(["--config", str(bad), "--print-map"]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err
    assert "machines.0.variables.0.sigma" in err and "greater than 0" in err


@pytest.mark.parametrize(
    ("args", "needle"),
    [(["--rate", "0"], "--rate 0.0"), (["--speed", "-1"], "--speed -1.0"),
     (["--start", "2026-01-01"], "--start applies to the virtual clock: give --speed too"),
     (["--opcua-security", "None,Basic128"], "unknown policy ['Basic128']; choose from None"),
     (["--user", "nopassword"], "--user 'nopassword': expected NAME:PASSWORD")],
)
def test_bad_options_are_refused(capsys, args, needle):
    assert main(["--config", str(MACHINING_LINE), "--print-map", *args]) == 2
    assert needle in capsys.readouterr().err


def test_client_commands_inject_state_and_clear(module_simulator: RunningSimulator, capsys):
    url = module_simulator.control_url
    assert main(["inject", "--control-url", url, "--machine", "CNC1", "--variable",
                 "spindle_temp", "--kind", "trend", "--magnitude", "0.5"]) == 0
    injected = json.loads(capsys.readouterr().out)
    assert injected["kind"] == "trend" and injected["variable"] == "spindle_temp"
    assert main(["state", "--control-url", url]) == 0
    state = json.loads(capsys.readouterr().out)
    assert [d["kind"] for d in state["disturbances"]] == ["trend"]
    assert main(["inject", "--control-url", url, "--variable", "bore_diameter",
                 "--kind", "dropout", "--for-samples", "5"]) == 0
    dropout = json.loads(capsys.readouterr().out)
    assert dropout["for_samples"] == 5
    assert main(["clear", "--control-url", url, "--id", str(dropout["id"])]) == 0
    assert json.loads(capsys.readouterr().out)["kind"] == "dropout"
    assert main(["clear", "--control-url", url]) == 0
    assert json.loads(capsys.readouterr().out) == {"cleared": 1}


def test_client_inject_with_bad_variable_fails_with_the_reason(
    module_simulator: RunningSimulator, capsys
):
    code = main(["inject", "--control-url", module_simulator.control_url, "--variable",
                 "nope", "--kind", "shift"])
    assert code == 1
    assert "unknown variable 'nope'" in capsys.readouterr().err


def test_client_reports_an_unreachable_simulator(capsys):
    url = f"http://127.0.0.1:{free_port()}"
    assert main(["state", "--control-url", url]) == 1
    assert f"cannot reach {url}" in capsys.readouterr().err


def test_a_busy_port_or_missing_serial_device_is_a_clear_error():
    import socket
    import subprocess
    import sys

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        run = subprocess.run(
            [sys.executable, "-m", "simulators", "--no-opcua", "--modbus-port", str(port),
             "--control-port", str(free_port())],
            capture_output=True, text=True, timeout=60,
        )
    assert run.returncode == 1
    assert f"Modbus tcp cannot serve on ('127.0.0.1', {port})" in run.stderr
    run = subprocess.run(
        [sys.executable, "-m", "simulators", "--no-opcua", "--no-modbus-tcp", "--modbus-rtu",
         "/dev/no-such-tty", "--control-port", str(free_port())],
        capture_output=True, text=True, timeout=60,
    )
    assert run.returncode == 1
    assert "Modbus rtu cannot serve on /dev/no-such-tty" in run.stderr


def test_bad_start_instant_is_refused(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--print-map", "--speed", "10", "--start", "yesterday"])
    assert info.value.code == 2
    assert "'yesterday' is not an ISO 8601 timestamp" in capsys.readouterr().err


def test_bad_log_level_is_refused_by_the_parser(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--print-map", "--log-level", "loud"])
    assert info.value.code == 2
    assert "--log-level: invalid choice: 'LOUD'" in capsys.readouterr().err
