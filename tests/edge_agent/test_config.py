"""Config loading: good files load; bad ones produce messages naming file, field path and fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.cli import main
from edge_agent.config import ConfigError, load_config

EXAMPLES = Path(__file__).resolve().parents[2] / "edge_agent" / "examples"

GOOD = """
agent: {name: edge-1}
server: {url: "http://127.0.0.1:8000", api_key: "${SPC_AGENT_KEY}"}
buffer: {path: "%(buf)s", max_samples: 1000}
upload: {batch_size: 100, interval_s: 0.5}
sources:
  - kind: opcua
    name: cnc1-opcua
    endpoint: opc.tcp://127.0.0.1:4840/shopfloor-spc/
    password: "${PLC_PASSWORD}"
    username: agent
    security: {policy: None, allow_insecure: true}
    tags:
      - {node_id: "ns=2;s=Line1.CNC1.bore_diameter", characteristic: bore_diameter, unit: mm}
  - kind: modbus
    name: cnc1-modbus
    host: 127.0.0.1
    port: 5020
    tags:
      - {characteristic: bore_diameter, address: 0, type: float32, byte_order: ABCD}
      - {characteristic: spindle_temp, address: 4, function: input, type: int16, scale: 0.1}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.yaml"
    path.write_text(text % {"buf": tmp_path / "buf.sqlite"} if "%(buf)s" in text else text)
    return path


def error_of(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> str:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, env={"SPC_AGENT_KEY": "k", "PLC_PASSWORD": "pw"} if env is None
                    else env)
    message = str(info.value)
    assert message.startswith(str(path)), message  # every message names the file
    return message


def test_good_config_loads_with_secrets_from_the_environment(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD), env={"SPC_AGENT_KEY": "s3cret-key",
                                                      "PLC_PASSWORD": "pw"})
    assert config.server.api_key is not None
    assert config.server.api_key.get_secret_value() == "s3cret-key"
    assert "s3cret-key" not in repr(config) and "s3cret-key" not in str(config.model_dump())
    modbus = config.sources[1]
    assert modbus.tags[1].function == 4 and modbus.tags[1].scale == 0.1


def test_missing_environment_variable_names_field_and_variable(tmp_path: Path) -> None:
    message = error_of(tmp_path, GOOD, env={"SPC_AGENT_KEY": "k"})
    assert "sources[0].password" in message and "PLC_PASSWORD is not set" in message


def test_wrong_type_names_the_field_path_and_the_bad_value(tmp_path: Path) -> None:
    text = GOOD.replace("address: 4,", "address: forty,")
    message = error_of(tmp_path, text)
    assert "sources[1].tags[1].address: Input should be a valid integer" in message
    assert "'forty'" in message


def test_negative_address_says_what_is_expected(tmp_path: Path) -> None:
    message = error_of(tmp_path, GOOD.replace("address: 0,", "address: -3,"))
    assert "sources[1].tags[0].address: Input should be greater than or equal to 0" in message


def test_typo_in_a_key_suggests_the_right_one(tmp_path: Path) -> None:
    message = error_of(tmp_path, GOOD.replace("byte_order: ABCD", "byteorder: ABCD"))
    assert "sources[1].tags[0].byteorder: unknown key 'byteorder'; did you mean 'byte_order'?" \
        in message


def test_bad_byte_order_lists_the_choices(tmp_path: Path) -> None:
    message = error_of(tmp_path, GOOD.replace("byte_order: ABCD", "byte_order: ABDC"))
    assert "sources[1].tags[0].byte_order" in message
    assert "'ABCD', 'DCBA', 'BADC' or 'CDAB'" in message


def test_unknown_source_kind_lists_the_known_ones(tmp_path: Path) -> None:
    message = error_of(tmp_path, GOOD.replace("kind: modbus", "kind: profinet"))
    assert "sources[1]: unknown source kind 'profinet'; expected one of: modbus, opcua" in message


def test_string_without_length_explains_the_fix(tmp_path: Path) -> None:
    message = error_of(tmp_path, GOOD.replace("type: int16", "type: string"))
    assert "sources[1].tags[1]: type string needs length" in message


def test_modbus_tcp_without_host(tmp_path: Path) -> None:
    message = error_of(tmp_path, GOOD.replace("    host: 127.0.0.1\n", ""))
    assert "sources[1]: transport tcp needs host" in message


def test_missing_required_section(tmp_path: Path) -> None:
    message = error_of(tmp_path, GOOD.replace("agent: {name: edge-1}\n", ""))
    assert "agent: required field is missing" in message


def test_duplicate_source_names(tmp_path: Path) -> None:
    message = error_of(tmp_path, GOOD.replace("name: cnc1-modbus", "name: cnc1-opcua"))
    assert "source names must be unique; repeated: cnc1-opcua" in message


def test_invalid_yaml_gives_line_and_column(tmp_path: Path) -> None:
    message = error_of(tmp_path, "agent: {name: edge-1\nserver: [")
    assert "not valid YAML" in message and "line " in message


def test_not_a_mapping(tmp_path: Path) -> None:
    message = error_of(tmp_path, "- just\n- a list\n")
    assert "expected a mapping with agent, server, buffer and sources" in message


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: no such file"):
        load_config("/nonexistent/nope.yaml")


def test_cli_prints_the_message_and_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPC_AGENT_KEY", "k")
    monkeypatch.setenv("PLC_PASSWORD", "pw")
    path = write(tmp_path, GOOD.replace("address: 0,", "address: -3,"))
    assert main(["--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "sources[1].tags[0].address" in err


def test_cli_check_config_rejects_a_bad_file(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPC_AGENT_KEY", "k")
    monkeypatch.setenv("PLC_PASSWORD", "pw")
    path = write(tmp_path, GOOD.replace("kind: modbus", "kind: profinet"))
    assert main(["check-config", str(path)]) == 2
    assert "unknown source kind 'profinet'" in capsys.readouterr().err


def test_cli_without_config_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "--config FILE is required" in capsys.readouterr().err


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_examples_are_valid(example: Path) -> None:
    env = {"SPC_AGENT_KEY": "k", "PLC_PASSWORD": "pw", "OPCUA_PASSWORD": "pw",
           "SPC_SERVER_URL": "http://127.0.0.1:8000"}
    load_config(example, env=env)
