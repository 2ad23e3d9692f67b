"""OPC UA endpoint security: which policies are offered, the server certificate, and users."""

from __future__ import annotations

from typing import TYPE_CHECKING

from asyncua import Server, ua

if TYPE_CHECKING:
    from simulators.opcua_server import OpcUaSecurity

POLICIES = {
    "None": ua.SecurityPolicyType.NoSecurity,
    "Basic256Sha256_Sign": ua.SecurityPolicyType.Basic256Sha256_Sign,
    "Basic256Sha256_SignAndEncrypt": ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
}


async def configure_security(server: Server, security: OpcUaSecurity) -> None:
    unknown = [p for p in security.policies if p not in POLICIES]
    if unknown:
        raise ValueError(f"unknown OPC UA security policy {unknown}; choose from {list(POLICIES)}")
    server.set_security_policy([POLICIES[p] for p in security.policies])
