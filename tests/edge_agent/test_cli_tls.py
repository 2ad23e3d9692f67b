"""`spc agent check-config` as a commissioning tool, and uploads over TLS with a private CA."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import subprocess
import sys
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edge_agent.buffer import SqliteBuffer
from edge_agent.config import parse_config
from edge_agent.uploader import Uploader
from tests.edge_agent.test_uploader import make
from tests.fixtures.ingest_receiver import IngestReceiver
from tests.fixtures.net import free_port
from tests.fixtures.simulators import RunningSimulator

REPO = Path(__file__).resolve().parents[2]


def run_spc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "spc_cli.main", "agent", *args],
                          capture_output=True, text=True, cwd=REPO, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "SPC_AGENT_KEY": "k"})


def agent_yaml(tmp_path: Path, sources: list[dict[str, object]]) -> Path:
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump({
        "agent": {"name": "commissioning"},
        "server": {"url": "http://127.0.0.1:9", "api_key": "${SPC_AGENT_KEY}"},
        "buffer": {"path": str(tmp_path / "b.sqlite")}, "sources": sources}))
    return path


def test_check_config_prints_every_tag_with_value_quality_unit(
        module_simulator: RunningSimulator, tmp_path: Path) -> None:
    path = agent_yaml(tmp_path, [
        {"kind": "opcua", "name": "cnc1-opcua", "endpoint": module_simulator.opcua_endpoint,
         "security": {"policy": "None", "allow_insecure": True},
         "tags": [{"node_id": "ns=2;s=Line1.CNC1.bore_diameter",
                   "characteristic": "bore_diameter", "unit": "mm"},
                  {"node_id": "ns=2;s=Line1.CNC1.nope", "characteristic": "ghost"}]},
        {"kind": "modbus", "name": "cnc1-modbus", "host": "127.0.0.1",
         "port": module_simulator.modbus_port,
         "tags": [{"characteristic": "spindle_temp", "address": 4, "unit": "°C"}]}])
    out = run_spc("check-config", str(path))
    assert out.returncode == 0, out.stderr + out.stdout
    # the insecure source is named, the Modbus one (no security to have) is not
    assert "warning: cnc1-opcua: OPC UA without security" in out.stderr
    assert "cnc1-modbus" not in out.stderr
    lines = out.stdout.splitlines()
    assert "valid; agent commissioning, 2 source(s)" in lines[0]
    assert lines[1].split() == ["SOURCE", "TAG", "CHARACTERISTIC", "VALUE", "QUALITY", "UNIT"]
    bore = next(line for line in lines if "bore_diameter" in line).split()
    assert bore[0] == "cnc1-opcua" and bore[-2:] == ["good", "mm"]
    assert 24.9 < float(bore[-3]) < 25.1
    ghost = next(line for line in lines if "ghost" in line).split()
    assert ghost[-2:] == ["null", "bad"]
    temp = next(line for line in lines if "spindle_temp" in line).split()
    assert temp[0] == "cnc1-modbus" and temp[-2:] == ["good", "°C"]
    assert 40 < float(temp[-3]) < 50


def test_check_config_reports_an_unreachable_source_and_exits_1(tmp_path: Path) -> None:
    port = free_port()
    path = agent_yaml(tmp_path, [{"kind": "modbus", "name": "plc", "host": "127.0.0.1",
                                  "port": port, "timeout_s": 0.5,
                                  "tags": [{"characteristic": "x", "address": 0}]}])
    out = run_spc("check-config", str(path))
    assert out.returncode == 1
    assert f"ERROR: cannot connect to 127.0.0.1:{port}" in out.stdout


def test_agent_with_a_bad_config_exits_2_naming_the_problem(tmp_path: Path) -> None:
    path = agent_yaml(tmp_path, [{"kind": "modbus", "name": "plc", "host": "127.0.0.1",
                                  "tags": [{"characteristic": "x", "address": 0,
                                            "type": "float23"}]}])
    out = run_spc("--config", str(path))
    assert out.returncode == 2
    assert f"{path}: invalid configuration" in out.stderr
    assert "sources[0].tags[0].type" in out.stderr and "'float32'" in out.stderr


def test_help_is_useful() -> None:
    out = run_spc("--help")
    assert out.returncode == 0 and "check-config" in out.stdout and "--config" in out.stdout


def make_ca_and_server_cert(directory: Path) -> tuple[Path, ssl.SSLContext]:
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Plant test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_file = directory / "ca.pem"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file, key_file = directory / "server.pem", directory / "server-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_file, key_file)
    return ca_file, context


async def test_uploads_over_tls_trusting_a_private_ca(tmp_path: Path) -> None:
    ca_file, context = make_ca_and_server_cert(tmp_path)
    receiver = IngestReceiver(tls=context).start()
    try:
        base = {"agent": {"name": "tls"}, "buffer": {"path": str(tmp_path / "b.sqlite")},
                "upload": {"backoff_initial_s": 0.05, "backoff_max_s": 0.1},
                "sources": [{"kind": "modbus", "name": "m", "host": "h",
                             "tags": [{"characteristic": "x", "address": 0}]}]}
        buffer = SqliteBuffer(tmp_path / "b.sqlite", 1000)
        buffer.append(make(5))
        untrusting = Uploader(parse_config({**base, "server": {"url": receiver.url}}), buffer)
        assert await untrusting.drain() is not None  # unknown CA: refused, samples kept
        assert "CERTIFICATE_VERIFY_FAILED" in (untrusting.stats.last_error or "")
        await untrusting.aclose()
        trusting = Uploader(parse_config(
            {**base, "server": {"url": receiver.url, "ca_file": str(ca_file)}}), buffer)
        assert await trusting.drain() is None
        await trusting.aclose()
        assert receiver.sample_count == 5 and buffer.depth == 0
    finally:
        receiver.stop()
