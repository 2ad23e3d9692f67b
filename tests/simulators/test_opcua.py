"""OPC UA beyond reading one value: security modes, users, subscriptions, many nodes per read."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from asyncua import Client, ua
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from cryptography.x509.oid import ExtendedKeyUsageOID

from tests.fixtures.simulators import RunningSimulator

BORE = "ns=2;s=Line1.CNC1.bore_diameter"


async def client_certificate(directory: Path, name: str) -> tuple[Path, Path, str]:
    directory.mkdir(parents=True, exist_ok=True)
    uri = f"urn:shopfloor-spc:test:{name}"
    cert, key = directory / f"{name}.der", directory / f"{name}.pem"
    await setup_self_signed_certificate(
        key, cert, uri, "localhost", [ExtendedKeyUsageOID.CLIENT_AUTH], {"commonName": name}
    )
    return cert, key, uri


async def secure_client(endpoint: str, cert: Path, key: Path, uri: str,
                        mode: ua.MessageSecurityMode) -> Client:
    client = Client(endpoint, timeout=5)
    client.application_uri = uri
    await client.set_security(SecurityPolicyBasic256Sha256, str(cert), str(key), mode=mode)
    return client


async def read_bore(client: Client) -> float:
    async with client:
        return await client.get_node(BORE).read_value()


@pytest.fixture(scope="module")
async def client_certs(tmp_path_factory: pytest.TempPathFactory):
    directory = tmp_path_factory.mktemp("client-pki")
    return {
        "trusted": await client_certificate(directory, "trusted-client"),
        "stranger": await client_certificate(directory, "stranger"),
    }


async def test_sign_and_encrypt_admits_the_trusted_certificate_only(
    simulator_factory, tmp_path: Path, client_certs
):
    pki = tmp_path / "pki"
    (pki / "trusted").mkdir(parents=True)
    shutil.copy(client_certs["trusted"][0], pki / "trusted" / "client.der")
    sim: RunningSimulator = simulator_factory(extra_args=[
        "--opcua-security", "Basic256Sha256_Sign,Basic256Sha256_SignAndEncrypt",
        "--cert-dir", str(pki),
    ])
    # The server certificate was created on first start.
    assert (pki / "server_cert.der").stat().st_size > 500
    assert (pki / "server_key.pem").stat().st_mode & 0o077 == 0

    cert, key, uri = client_certs["trusted"]
    for mode in (ua.MessageSecurityMode.SignAndEncrypt, ua.MessageSecurityMode.Sign):
        value = await read_bore(await secure_client(sim.opcua_endpoint, cert, key, uri, mode))
        assert abs(value - 25.0) < 0.05

    cert, key, uri = client_certs["stranger"]
    stranger = await secure_client(sim.opcua_endpoint, cert, key, uri,
                                   ua.MessageSecurityMode.SignAndEncrypt)
    with pytest.raises(ua.UaStatusCodeError) as refused:
        await read_bore(stranger)
    assert refused.value.code == ua.StatusCodes.BadCertificateUntrusted
    assert "copy it into" in sim.log() and str(pki / "trusted") in sim.log()

    # No security at all: the endpoint does not offer it.
    with pytest.raises((ua.UaError, OSError, asyncio.TimeoutError)):
        await read_bore(Client(sim.opcua_endpoint, timeout=5))

    # The next start reuses the certificate made on the first.
    server_cert = (pki / "server_cert.der").read_bytes()
    sim.stop()
    again = simulator_factory(extra_args=sim.args[sim.args.index("--opcua-security"):])
    assert (pki / "server_cert.der").read_bytes() == server_cert
    cert, key, uri = client_certs["trusted"]
    client = await secure_client(again.opcua_endpoint, cert, key, uri,
                                 ua.MessageSecurityMode.SignAndEncrypt)
    assert abs(await read_bore(client) - 25.0) < 0.05


async def test_username_and_password_are_required_when_configured(simulator_factory):
    sim = simulator_factory(extra_args=["--user", "operator:s3cret"])
    client = Client(sim.opcua_endpoint, timeout=5)
    client.set_user("operator")
    client.set_password("s3cret")
    assert abs(await read_bore(client) - 25.0) < 0.05

    wrong = Client(sim.opcua_endpoint, timeout=5)
    wrong.set_user("operator")
    wrong.set_password("guess")
    with pytest.raises(ua.UaStatusCodeError):
        await read_bore(wrong)
    with pytest.raises(ua.UaStatusCodeError):
        await read_bore(Client(sim.opcua_endpoint, timeout=5))  # anonymous


async def test_subscription_delivers_each_new_sample(module_simulator: RunningSimulator):
    received: list[ua.DataValue] = []

    class Handler:
        def datachange_notification(self, node, val, data) -> None:
            received.append(data.monitored_item.Value)

    async with Client(module_simulator.opcua_endpoint, timeout=10) as client:
        subscription = await client.create_subscription(20, Handler())
        await subscription.subscribe_data_change(client.get_node(BORE))
        for _ in range(100):
            if len(received) >= 6:
                break
            await asyncio.sleep(0.05)
        await subscription.delete()
    assert len(received) >= 6
    stamps = [dv.SourceTimestamp for dv in received]
    assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
    assert all(dv.StatusCode.is_good() and abs(dv.Value.Value - 25.0) < 0.05 for dv in received)


async def test_one_read_request_returns_many_nodes_with_their_properties(
    module_simulator: RunningSimulator,
):
    names = ["bore_diameter", "surface_roughness", "spindle_temp"]
    async with Client(module_simulator.opcua_endpoint, timeout=10) as client:
        nodes = [client.get_node(f"ns=2;s=Line1.CNC1.{n}") for n in names]
        props = [client.get_node(f"ns=2;s=Line1.CNC1.{n}.EURange") for n in names]
        values = await client.read_values([*nodes, *props])
    # Within 6 sigma of each configured mean (sigmas 0.005, 0.05, 0.5).
    assert all(abs(v - m) < 6 * sd for v, m, sd in zip(
        values[:3], [25.0, 0.8, 45.0], [0.005, 0.05, 0.5], strict=True))
    assert [(r.Low, r.High) for r in values[3:]] == [(24.9, 25.1), (0.0, 3.2), (0.0, 120.0)]
