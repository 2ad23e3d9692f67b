"""Operations: TLS, CORS, structured logs, metrics, health when the database goes away, and
bad settings."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from server.core.localdb import LocalCluster
from tests.fixtures.net import free_port
from tests.fixtures.server import ROOT, LiveServer, start_live_server
from tests.server.helpers import batch_headers, samples

SPC = [sys.executable, "-m", "spc_cli.main"]


def self_signed(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=1))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp / "cert.pem", tmp / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def wait_ok(url: str, **kw) -> httpx.Response:
    deadline = time.monotonic() + 30
    while True:
        try:
            return httpx.get(url, timeout=2, **kw)
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_tls(live_server: LiveServer, tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    port = free_port()
    env = {**os.environ, "SPC_DATABASE_URL": live_server.dsn, "SPC_PORT": str(port)}
    proc = subprocess.Popen([*SPC, "server", "--tls-certfile", str(cert), "--tls-keyfile",
                             str(key)], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        trust = ssl.create_default_context(cafile=str(cert))
        r = wait_ok(f"https://127.0.0.1:{port}/api/v1/health", verify=trust)
        assert r.status_code == 200 and r.json()["status"] == "ok"
        with pytest.raises(httpx.ConnectError):  # an untrusted certificate is refused
            httpx.get(f"https://127.0.0.1:{port}/api/v1/health")
    finally:
        proc.terminate()
        proc.wait(10)
    half = subprocess.run([*SPC, "server", "--tls-certfile", str(cert)], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=30)
    assert half.returncode == 2 and "go together" in half.stderr


def test_cors_json_logs_and_metrics(pg_cluster: LocalCluster, tmp_path: Path) -> None:
    server = start_live_server(pg_cluster, tmp_path, SPC_CORS_ORIGINS="https://mes.example",
                               SPC_LOG_FORMAT="json", SPC_LOG_LEVEL="info")
    try:
        pre = httpx.options(f"{server.url}/api/v1/characteristics", headers={
            "Origin": "https://mes.example", "Access-Control-Request-Method": "GET"})
        assert pre.headers["access-control-allow-origin"] == "https://mes.example"
        other = httpx.options(f"{server.url}/api/v1/characteristics", headers={
            "Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
        assert "access-control-allow-origin" not in other.headers
        with server.client("engineer") as c:
            c.post("/characteristics", json={"key": "ops", "name": "ops", "baseline_points": 0})
        httpx.post(f"{server.url}/api/v1/ingest", json={"samples": samples("ops", [1.0, 2.0])},
                   headers=batch_headers(server.headers("agent")))
        metrics = httpx.get(f"{server.url}/metrics").text
        values = dict(line.rsplit(" ", 1) for line in metrics.splitlines()
                      if line and not line.startswith("#"))
        assert float(values["spc_samples_ingested_total"]) == 2
        assert float(values["spc_ingest_batches_total"]) == 1
        assert float(values["spc_evaluation_lag_seconds"]) > 0  # the samples are from January
    finally:
        server.stop()
    lines = [ln for ln in server.log_path.read_text().splitlines() if ln.strip()]
    records = [json.loads(ln) for ln in lines]  # every line is one JSON object
    assert any(r["logger"] == "spc.server" and "storage mode" in r["message"] for r in records)


def test_health_reports_503_while_the_database_is_down(tmp_path: Path) -> None:
    base = Path(tempfile.mkdtemp(prefix="spc-pg-ops-"))
    os.chmod(base, 0o755)
    cluster = LocalCluster(base / "pg", free_port())
    cluster.start()
    try:
        server = start_live_server(cluster, tmp_path)
        try:
            assert httpx.get(f"{server.url}/api/v1/health").status_code == 200
            cluster.stop("immediate")
            r = httpx.get(f"{server.url}/api/v1/health", timeout=30)
            assert r.status_code == 503 and r.json()["status"] == "degraded"
            # an agent's batch now: transient, with a hint when to retry, not a 500
            r = httpx.post(f"{server.url}/api/v1/ingest", json={"samples": []},
                           headers=batch_headers(server.headers("agent")), timeout=30)
            assert r.status_code == 503 and r.headers["retry-after"] == "5", r.text
            cluster.start()
            deadline = time.monotonic() + 30
            while httpx.get(f"{server.url}/api/v1/health", timeout=30).status_code != 200:
                assert time.monotonic() < deadline, "health did not recover"
                time.sleep(0.3)
        finally:
            server.stop()
    finally:
        cluster.stop("immediate")


@pytest.mark.parametrize(("env", "message"), [
    ({"SPC_PORT": "eighty"}, "SPC_PORT"),
    ({"SPC_TIMESCALEDB": "maybe"}, "SPC_TIMESCALEDB"),
    ({"SPC_LOG_FORMAT": "xml"}, "SPC_LOG_FORMAT"),
    ({"SPC_RETENTION_DAYS": "-3"}, "SPC_RETENTION_DAYS"),
])
def test_bad_settings_exit_2_naming_the_variable(env: dict[str, str], message: str) -> None:
    proc = subprocess.run([*SPC, "server"], env={**os.environ, **env}, cwd=ROOT,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
