"""OPC UA endpoint security: policies offered, the server certificate, trusted clients, users.

With a signing policy the server needs a certificate: a self-signed one is created in the
certificate directory on first start and reused afterwards. Client certificates are trusted when
their file (DER or PEM) is in `<cert dir>/trusted/`, read at every connection, so an integrator can
drop a client's certificate there without restarting; any other client certificate is refused
with BadCertificateUntrusted, as a real PLC does.
"""

from __future__ import annotations

import logging
import socket
from dataclasses import dataclass, field
from pathlib import Path

from asyncua import Server, ua
from asyncua.common.utils import ServiceError
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from asyncua.crypto.permission_rules import User, UserRole
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID

log = logging.getLogger(__name__)

APPLICATION_URI = "urn:shopfloor-spc:simulator:server"
POLICIES = {
    "None": ua.SecurityPolicyType.NoSecurity,
    "Basic256Sha256_Sign": ua.SecurityPolicyType.Basic256Sha256_Sign,
    "Basic256Sha256_SignAndEncrypt": ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
}


@dataclass
class OpcUaSecurity:
    """Which security policies the endpoint offers, where its PKI lives, and who may log in."""

    policies: list[str] = field(default_factory=lambda: ["None"])
    cert_dir: Path | None = None
    users: dict[str, str] = field(default_factory=dict)

    def check(self) -> None:
        unknown = [p for p in self.policies if p not in POLICIES]
        if unknown or not self.policies:
            raise ValueError(
                f"unknown OPC UA security policy {unknown or self.policies}; "
                f"choose from {', '.join(POLICIES)}"
            )

    @property
    def signed(self) -> bool:
        return any(p != "None" for p in self.policies)

    @property
    def pki(self) -> Path:
        return self.cert_dir or Path(".spc/simulator-pki")

    @property
    def trusted_dir(self) -> Path:
        return self.pki / "trusted"


class PasswordUsers:
    """asyncua user manager: only the configured name/password pairs may open a session."""

    def __init__(self, users: dict[str, str]) -> None:
        self.users = dict(users)

    def get_user(self, iserver: object, username: str | None = None,
                 password: str | None = None, certificate: object = None) -> User | None:
        if username is not None and self.users.get(username) == password:
            return User(role=UserRole.User, name=username)
        return None


class TrustedClients:
    """asyncua certificate validator: the client certificate must be one of the trusted files."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def trusted(self) -> set[bytes]:
        ders: set[bytes] = set()
        for path in sorted(self.directory.glob("*")):
            if path.suffix.lower() not in {".der", ".pem", ".crt", ".cer"}:
                continue
            data = path.read_bytes()
            try:
                cert = (x509.load_pem_x509_certificate(data) if b"-----BEGIN" in data
                        else x509.load_der_x509_certificate(data))
            except ValueError:
                log.warning("ignoring %s: not a certificate", path)
                continue
            ders.add(cert.public_bytes(Encoding.DER))
        return ders

    async def __call__(self, cert: x509.Certificate, app: ua.ApplicationDescription) -> None:
        if cert.public_bytes(Encoding.DER) not in self.trusted():
            log.warning(
                "refused client %s: its certificate is not trusted; to trust it, copy it into %s",
                app.ApplicationUri, self.directory,
            )
            raise ServiceError(ua.StatusCodes.BadCertificateUntrusted)


async def server_certificate(pki: Path, host: str) -> tuple[Path, Path]:
    """(certificate, private key) of the server, created on first start."""
    pki.mkdir(parents=True, exist_ok=True)
    cert, key = pki / "server_cert.der", pki / "server_key.pem"
    await setup_self_signed_certificate(
        key, cert, APPLICATION_URI, host or socket.gethostname(),
        [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
        {"organizationName": "shopfloor-spc", "commonName": "shopfloor-spc simulator"},
    )
    key.chmod(0o600)
    return cert, key


async def configure_security(server: Server, security: OpcUaSecurity, host: str) -> None:
    """Policies, certificate, trusted clients and login methods, before the server starts."""
    security.check()
    server.set_security_policy([POLICIES[p] for p in security.policies])
    if security.signed:
        cert, key = await server_certificate(security.pki, host)
        await server.load_certificate(str(cert))
        await server.load_private_key(str(key))
        security.trusted_dir.mkdir(parents=True, exist_ok=True)
        server.set_certificate_validator(TrustedClients(security.trusted_dir))
    # Without users anyone may log in anonymously; with users only they may.
    server.set_identity_tokens(
        [ua.UserNameIdentityToken] if security.users else [ua.AnonymousIdentityToken]
    )

