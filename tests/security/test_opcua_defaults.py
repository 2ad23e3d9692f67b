"""OPC UA certificate validation by default (issue 9): what the agent's configuration accepts.

The default used to be `security.policy: None` (no signature, no encryption, no certificate at
all), and `Basic256Sha256` without `server_certificate` or `trusted_server_certs` took the
server's certificate from the endpoint itself (over the unsecured GetEndpoints call), so a man in
the middle on the cell network was trusted. Now an OPC UA source must state its security: a
secured policy with the server's certificate pinned, or `policy: None` with `allow_insecure:
true`; anything else is a configuration error naming the file, the field and the fix. That the
agent then refuses a server presenting another certificate is tested against the simulator in
tests/edge_agent/test_opcua_security_triggers.py.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from edge_agent.config import ConfigError, load_config


def write(tmp_path: Path, security: dict | None) -> Path:
    source = {"kind": "opcua", "name": "plc", "endpoint": "opc.tcp://127.0.0.1:4840/",
              "tags": [{"node_id": "ns=2;s=x", "characteristic": "x"}]}
    if security is not None:
        source["security"] = security
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump({
        "agent": {"name": "a"}, "server": {"url": "http://127.0.0.1:1", "api_key": "k"},
        "buffer": {"path": str(tmp_path / "b.sqlite")}, "sources": [source]}))
    return path


def test_a_secured_source_with_a_pinned_server_certificate_is_accepted(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, {
        "policy": "Basic256Sha256", "mode": "SignAndEncrypt", "certificate": "c.der",
        "private_key": "k.pem", "trusted_server_certs": ["plc.der"]}))
    assert cfg.sources[0].security.trusted_server_certs == [Path("plc.der")]


@pytest.mark.parametrize(("security", "field", "fix"), [
    (None, "sources[0].security", "allow_insecure: true"),
    ({"policy": "None"}, "sources[0].security.allow_insecure", "allow_insecure: true"),
    ({"policy": "None", "mode": "None"}, "sources[0].security.allow_insecure",
     "policy: Basic256Sha256"),
    ({"policy": "Basic256Sha256", "mode": "SignAndEncrypt", "certificate": "c.der",
      "private_key": "k.pem"}, "sources[0].security.trusted_server_certs",
     "trusted_server_certs: ["),
    ({"policy": "Basic256Sha256", "mode": "Sign", "certificate": "c.der",
      "private_key": "k.pem", "allow_insecure": True},
     "sources[0].security.allow_insecure", "remove it"),
], ids=["default", "policy-None-unacknowledged", "policy-None-mode-None-unacknowledged",
        "secured-without-trust-list", "secured-with-allow-insecure"])
def test_unvalidated_server_certificates_are_refused_by_default(
    tmp_path: Path, security: dict | None, field: str, fix: str
) -> None:
    path = write(tmp_path, security)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert message.startswith(f"{path}: invalid configuration")  # the file
    assert f"  {field}: " in message  # the field path
    assert fix in message  # and what to write


def test_a_pinned_server_certificate_alone_is_accepted(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, {
        "policy": "Basic256Sha256", "certificate": "c.der", "private_key": "k.pem",
        "server_certificate": "plc.der"}))
    security = cfg.sources[0].security
    assert security.mode == "SignAndEncrypt"  # the stronger mode unless told otherwise
    assert security.server_certificate == Path("plc.der")


def test_no_security_is_an_explicit_visible_opt_in(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, {"policy": "None", "allow_insecure": True}))
    security = cfg.sources[0].security
    assert (security.policy, security.mode, security.allow_insecure) == ("None", "None", True)
    assert not security.secured
