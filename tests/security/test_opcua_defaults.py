"""OPC UA certificate validation by default (issue 9): what the agent's configuration accepts.

Today the default is `security.policy: None` (no signature, no encryption, no certificate at
all), and with `Basic256Sha256` the server's certificate is taken from the endpoint itself (over
the unsecured GetEndpoints call) unless `server_certificate` or `trusted_server_certs` pins it:
a man in the middle on the cell network is trusted. docs/reliability.md says what to configure.
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


@pytest.mark.xfail(strict=True, reason=(
    "finding: OPC UA certificate validation is not on by default: edge_agent/sources/opcua.py "
    "OpcuaSecurity defaults to policy None, and Basic256Sha256 without server_certificate or "
    "trusted_server_certs trusts whatever certificate the endpoint presents"))
@pytest.mark.parametrize("security", [
    None,
    {"policy": "Basic256Sha256", "mode": "SignAndEncrypt", "certificate": "c.der",
     "private_key": "k.pem"},
], ids=["default", "secured-without-trust-list"])
def test_unvalidated_server_certificates_are_refused_by_default(
    tmp_path: Path, security: dict | None
) -> None:
    with pytest.raises(ConfigError):
        load_config(write(tmp_path, security))
