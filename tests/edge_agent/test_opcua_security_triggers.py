"""OPC UA: Basic256Sha256 Sign / SignAndEncrypt with certificates and users against the
simulator, and triggered sampling (part-complete counter -> one read of a group, tagged with the
part id) against a small asyncua server started here."""

from __future__ import annotations

import asyncio
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from asyncua import Server, ua
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from cryptography.x509.oid import ExtendedKeyUsageOID

from edge_agent.sources.base import SourceError
from edge_agent.sources.opcua import OpcuaConfig, OpcuaSource, fingerprint
from tests.fixtures.net import free_port
from tests.fixtures.simulators import RunningSimulator, start_simulator

VARIABLES = ("bore_diameter", "surface_roughness", "spindle_temp")


async def make_cert(directory: Path, name: str) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / f"{name}-cert.der", directory / f"{name}-key.pem"
    await setup_self_signed_certificate(
        key, cert, f"urn:shopfloor-spc:edge-agent:{name}", socket.gethostname(),
        [ExtendedKeyUsageOID.CLIENT_AUTH], {"commonName": f"spc edge agent {name}"})
    return cert, key


@pytest.fixture(scope="module")
async def secure_sim(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[dict[str, Any]]:
    """A simulator offering only Basic256Sha256 (Sign and SignAndEncrypt), one user, and our
    client certificate trusted."""
    tmp_path = tmp_path_factory.mktemp("secure")
    pki = tmp_path / "sim-pki"
    cert, key = await make_cert(tmp_path / "agent-pki", "trusted")
    (pki / "trusted").mkdir(parents=True)
    shutil.copy(cert, pki / "trusted" / cert.name)
    sim: RunningSimulator = await asyncio.to_thread(
        start_simulator, log_dir=tmp_path, extra_args=[
            "--opcua-security", "Basic256Sha256_Sign,Basic256Sha256_SignAndEncrypt",
            "--cert-dir", str(pki), "--user", "agent:s3cret"])
    yield {"sim": sim, "cert": cert, "key": key, "server_cert": pki / "server_cert.der",
           "tmp": tmp_path}
    sim.stop()


def secure_config(env: dict[str, Any], security_mode: str = "SignAndEncrypt",
                  **over: Any) -> OpcuaConfig:
    security = {"policy": "Basic256Sha256", "mode": security_mode, "certificate": str(env["cert"]),
                "private_key": str(env["key"]),
                "trusted_server_certs": [str(env["server_cert"])], **over.pop("security", {})}
    return OpcuaConfig.model_validate({
        "kind": "opcua", "name": "secure", "endpoint": env["sim"].opcua_endpoint,
        "timeout_s": 3, "username": "agent", "password": "s3cret", "security": security,
        "tags": [{"node_id": f"ns=2;s=Line1.CNC1.{v}", "characteristic": v}
                 for v in VARIABLES], **over})


async def read_once(source: OpcuaSource) -> list[Any]:
    await source.connect()
    try:
        return await source.read()
    finally:
        await source.close()


@pytest.mark.parametrize("mode", ["Sign", "SignAndEncrypt"])
async def test_secure_session_with_user_reads_values(secure_sim: dict[str, Any],
                                                     mode: str) -> None:
    samples = await read_once(OpcuaSource(secure_config(secure_sim, mode)))
    assert sorted(s.characteristic for s in samples) == sorted(VARIABLES)
    assert all(s.quality == "good" for s in samples)


async def test_trusted_server_certificate_list(secure_sim: dict[str, Any]) -> None:
    ok = secure_config(secure_sim, security={
        "trusted_server_certs": [str(secure_sim["server_cert"])]})
    assert len(await read_once(OpcuaSource(ok))) == 3
    stranger, _ = await make_cert(secure_sim["tmp"] / "other", "stranger")
    refused = secure_config(secure_sim, security={"trusted_server_certs": [str(stranger)]})
    with pytest.raises(SourceError, match=r"not in security\.trusted_server_certs"):
        await read_once(OpcuaSource(refused))


async def test_pinned_server_certificate(secure_sim: dict[str, Any]) -> None:
    """server_certificate alone (no GetEndpoints lookup): the channel is secured with the pinned
    certificate, so a server holding another one cannot complete the handshake."""
    ok = secure_config(secure_sim, security={
        "trusted_server_certs": [], "server_certificate": str(secure_sim["server_cert"])})
    assert len(await read_once(OpcuaSource(ok))) == 3
    impostor, _ = await make_cert(secure_sim["tmp"] / "other", "impostor")
    refused = secure_config(secure_sim, security={
        "trusted_server_certs": [], "server_certificate": str(impostor)})
    with pytest.raises(SourceError, match=r"other than security\.server_certificate"):
        await read_once(OpcuaSource(refused))


async def test_a_server_with_another_certificate_is_refused(
    secure_sim: dict[str, Any], tmp_path: Path
) -> None:
    """A second simulator, secured the same way but with its own certificate, stands in for a
    man in the middle: the agent trusting the first server's certificate refuses it."""
    pki = tmp_path / "pki"
    (pki / "trusted").mkdir(parents=True)
    shutil.copy(secure_sim["cert"], pki / "trusted" / secure_sim["cert"].name)
    other: RunningSimulator = await asyncio.to_thread(
        start_simulator, log_dir=tmp_path, extra_args=[
            "--opcua-security", "Basic256Sha256_SignAndEncrypt", "--cert-dir", str(pki),
            "--user", "agent:s3cret"])
    try:
        assert (pki / "server_cert.der").read_bytes() != secure_sim["server_cert"].read_bytes()
        env = {**secure_sim, "sim": other}
        with pytest.raises(SourceError, match=r"not in security\.trusted_server_certs") as info:
            await read_once(OpcuaSource(secure_config(env)))
        # the message gives the presented certificate's fingerprint, to compare on the PLC
        assert fingerprint((pki / "server_cert.der").read_bytes()) in str(info.value)
        pinned = secure_config(env, security={
            "trusted_server_certs": [], "server_certificate": str(secure_sim["server_cert"])})
        with pytest.raises(SourceError, match=r"other than security\.server_certificate"):
            await read_once(OpcuaSource(pinned))
        # and the same agent configuration trusting this server's certificate reads from it
        trusting = secure_config(env, security={
            "trusted_server_certs": [str(pki / "server_cert.der")]})
        assert len(await read_once(OpcuaSource(trusting))) == 3
    finally:
        await asyncio.to_thread(other.stop)


async def test_untrusted_client_certificate_is_refused(secure_sim: dict[str, Any]) -> None:
    cert, key = await make_cert(secure_sim["tmp"] / "other", "untrusted")
    cfg = secure_config(secure_sim, security={"certificate": str(cert),
                                              "private_key": str(key)})
    with pytest.raises(SourceError, match=r"BadCertificateUntrusted|BadSecurityChecksFailed"):
        await read_once(OpcuaSource(cfg))


async def test_wrong_password_is_refused(secure_sim: dict[str, Any]) -> None:
    with pytest.raises(SourceError, match=r"BadUserAccessDenied|BadIdentityTokenRejected"):
        await read_once(OpcuaSource(secure_config(secure_sim, password="wrong")))


async def test_unsecured_client_finds_no_endpoint(secure_sim: dict[str, Any]) -> None:
    cfg = OpcuaConfig.model_validate({
        "kind": "opcua", "name": "plain", "endpoint": secure_sim["sim"].opcua_endpoint,
        "security": {"policy": "None", "allow_insecure": True},
        "timeout_s": 2, "username": "agent", "password": "s3cret",
        "tags": [{"node_id": "ns=2;s=Line1.CNC1.bore_diameter", "characteristic": "b"}]})
    with pytest.raises(SourceError, match="No matching endpoints"):
        await read_once(OpcuaSource(cfg))


# --- triggered sampling ---------------------------------------------------------------------


class PartServer:
    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint = f"opc.tcp://127.0.0.1:{self.port}/parts/"
        self.server = Server()
        self.nodes: dict[str, Any] = {}

    async def start(self) -> PartServer:
        await self.server.init()
        self.server.set_endpoint(self.endpoint)
        idx = await self.server.register_namespace("urn:test:press")
        press = await self.server.nodes.objects.add_object(idx, "Press1")
        for name, value in (("PartCounter", 0), ("PartSerial", ""), ("Height", 10.0),
                            ("Flatness", 0.01)):
            node_id = ua.NodeId(f"Press1.{name}", idx)
            variant = ua.Variant(value, ua.VariantType.Int32 if name == "PartCounter" else None)
            self.nodes[name] = await press.add_variable(node_id, name, variant)
        await self.server.start()
        return self

    async def produce(self, serial: str, height: float, flatness: float, count: int) -> None:
        await self.nodes["PartSerial"].write_value(serial)
        await self.nodes["Height"].write_value(height)
        await self.nodes["Flatness"].write_value(flatness)
        await self.nodes["PartCounter"].write_value(ua.Variant(count, ua.VariantType.Int32))

    async def stop(self) -> None:
        await self.server.stop()


@pytest.fixture
async def part_server() -> AsyncIterator[PartServer]:
    server = await PartServer().start()
    yield server
    await server.stop()


async def test_trigger_reads_the_group_once_per_part(part_server: PartServer) -> None:
    ns = "nsu=urn:test:press;s=Press1"
    source = OpcuaSource(OpcuaConfig.model_validate({
        "kind": "opcua", "name": "press", "endpoint": part_server.endpoint, "interval_s": 0.05,
        "security": {"policy": "None", "allow_insecure": True},
        "triggers": [{"node_id": f"{ns}.PartCounter", "part_id_node": f"{ns}.PartSerial",
                      "tags": [{"node_id": f"{ns}.Height", "characteristic": "height"},
                               {"node_id": f"{ns}.Flatness", "characteristic": "flatness"}]}]}))
    await source.connect()
    got: list[Any] = []
    try:
        for _ in range(5):  # nothing before the first part: the initial value is no trigger
            got += await source.read()
        assert got == []
        for n in range(1, 4):
            await part_server.produce(f"P-{n:04d}", 10.0 + n, 0.01 * n, n)
            for _ in range(40):
                got += await source.read()
                if len(got) >= 2 * n:
                    break
    finally:
        await source.close()
    assert [(s.part_id, s.characteristic, s.value) for s in got] == [
        ("P-0001", "height", 11.0), ("P-0001", "flatness", 0.01),
        ("P-0002", "height", 12.0), ("P-0002", "flatness", 0.02),
        ("P-0003", "height", 13.0), ("P-0003", "flatness", 0.03)]


async def test_secure_subscription(secure_sim: dict[str, Any]) -> None:
    source = OpcuaSource(secure_config(secure_sim, "SignAndEncrypt", mode="subscribe",
                                       interval_s=0.1, sampling_interval_ms=50))
    await source.connect()
    got: list[Any] = []
    try:
        for _ in range(20):
            got += await source.read()
    finally:
        await source.close()
    bore = [s for s in got if s.characteristic == "bore_diameter"]
    assert len(bore) >= 5 and all(s.quality == "good" for s in bore)
