"""OPC UA source: polling (one Read request for all nodes) or subscription (monitored items).

Every connect builds a fresh client and resolves node ids again (a `nsu=<namespace uri>;...` id
is looked up in the server's namespace array each time), and a subscription is created anew, so
a restarted server with a reordered namespace array or lost subscriptions is followed without a
restart of the agent. The status code of each value travels as its quality; a Bad value is
reported as `bad` with no value, never as the last good one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from asyncua import Client, Node, ua
from asyncua.common.utils import Buffer
from asyncua.crypto import security_policies
from asyncua.ua.ua_binary import struct_from_binary
from asyncua.ua.uaerrors import UaError, UaStructParsingError
from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from edge_agent.sources import opcua_fast
from edge_agent.sources.base import (
    Quality,
    Sample,
    Source,
    SourceConfig,
    SourceError,
    StrictModel,
    register,
)

log = logging.getLogger(__name__)

# Errors that mean "the link or the server is in trouble", as opposed to bugs.
LINK_ERRORS = (OSError, TimeoutError, UaError, ConnectionError, asyncio.IncompleteReadError)


DataChangeTriggerName = Literal["status", "status_value", "status_value_timestamp"]
DATA_CHANGE_TRIGGERS = {
    "status": ua.DataChangeTrigger.Status,
    "status_value": ua.DataChangeTrigger.StatusValue,
    "status_value_timestamp": ua.DataChangeTrigger.StatusValueTimestamp,
}


class OpcuaTag(StrictModel):
    node_id: str = Field(min_length=3, description="e.g. ns=2;s=Line1.CNC1.bore_diameter or "
                         "nsu=urn:vendor:plc;s=Line1.CNC1.bore_diameter")
    characteristic: str = Field(min_length=1)
    unit: str = ""
    deadband: float | None = Field(None, ge=0, description="absolute deadband (subscriptions)")


SECURE_OR_OPT_OUT = (
    "set security: {policy: Basic256Sha256, mode: SignAndEncrypt, certificate: <agent cert>, "
    "private_key: <agent key>, trusted_server_certs: [<the server's certificate>]}, or, only on "
    "an isolated cell network, opt out explicitly with security: {policy: None, "
    "allow_insecure: true}")


class OpcuaSecurity(StrictModel):
    """How the channel to the server is secured. There is no silent default: a source states
    either a secured policy with the server's certificate pinned, or `policy: None` together
    with `allow_insecure: true`."""

    policy: Literal["None", "Basic256Sha256"] = Field(
        description="Basic256Sha256 (signed or signed and encrypted), or None (clear text)")
    mode: Literal["None", "Sign", "SignAndEncrypt"] | None = Field(
        None, description="default: SignAndEncrypt with Basic256Sha256, None with None")
    allow_insecure: bool = Field(
        False, validate_default=True, description="required with policy None: no signature, "
        "no encryption and no check of the server's identity, accepted knowingly")
    certificate: Path | None = Field(None, description="client certificate (DER or PEM)")
    private_key: Path | None = Field(None, description="client private key (PEM)")
    private_key_password: SecretStr | None = None
    server_certificate: Path | None = Field(
        None, description="the server's certificate, pinned: the channel is secured with it "
        "and a server presenting another one is refused")
    trusted_server_certs: list[Path] = Field(
        default_factory=list, validate_default=True,
        description="the server's certificate must be one of these")

    @model_validator(mode="before")
    @classmethod
    def _default_mode(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("mode") is None and "policy" in data:
            data = {**data, "mode": "None" if data["policy"] == "None" else "SignAndEncrypt"}
        return data

    # Field validators (rather than one model validator) so that the error names the field.
    @field_validator("allow_insecure")
    @classmethod
    def _insecure_acknowledged(cls, value: bool, info: ValidationInfo) -> bool:
        policy = info.data.get("policy")
        if policy == "None" and not value:
            raise ValueError(
                "policy None means no signature, no encryption and no check of the server's "
                "identity: set allow_insecure: true to accept that (only on an isolated cell "
                "network), or use policy: Basic256Sha256 with certificate, private_key and "
                "trusted_server_certs")
        if policy not in (None, "None") and value:
            raise ValueError(f"allow_insecure goes only with policy None (policy is {policy}); "
                             "remove it")
        return value

    @field_validator("trusted_server_certs")
    @classmethod
    def _server_pinned(cls, value: list[Path], info: ValidationInfo) -> list[Path]:
        policy = info.data.get("policy")
        if policy not in (None, "None") and not value and \
                info.data.get("server_certificate") is None:
            raise ValueError(
                f"policy {policy} needs the server's certificate pinned, or any endpoint (and "
                "any man in the middle) is trusted: list it here, e.g. trusted_server_certs: "
                "[/etc/spc-agent/pki/trusted/plc.der] (DER or PEM, exported from the PLC and "
                "checked by its fingerprint), or set server_certificate")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> OpcuaSecurity:
        if self.policy == "None":
            if self.mode != "None":
                raise ValueError(f"mode {self.mode} needs policy Basic256Sha256")
            pki = [name for name in ("certificate", "private_key", "server_certificate")
                   if getattr(self, name) is not None]
            if pki or self.trusted_server_certs:
                raise ValueError(f"policy None uses no certificates; remove "
                                 f"{', '.join(pki or ['trusted_server_certs'])} or set "
                                 "policy: Basic256Sha256")
            return self
        if self.mode == "None":
            raise ValueError(f"policy {self.policy} needs mode Sign or SignAndEncrypt")
        if self.certificate is None or self.private_key is None:
            raise ValueError(f"policy {self.policy} needs certificate and private_key paths "
                             "(the agent's own certificate, trusted on the server)")
        return self

    @property
    def secured(self) -> bool:
        return self.policy != "None"


class OpcuaTrigger(StrictModel):
    """Triggered sampling: when `node_id` changes, read `tags` once, tagged with the part id."""

    node_id: str = Field(min_length=3, description="trigger, e.g. a part-complete counter")
    part_id_node: str | None = Field(
        None, description="node holding the part id; default: the trigger's own value")
    tags: list[OpcuaTag] = Field(min_length=1)


class OpcuaConfig(SourceConfig):
    kind: Literal["opcua"]
    endpoint: str = Field(pattern=r"^opc\.tcp://", description="opc.tcp://host:port/path")
    mode: Literal["poll", "subscribe"] = "poll"
    username: str | None = None
    password: SecretStr | None = None
    # No default: a missing `security` is refused with what to write (see _security_stated).
    security: OpcuaSecurity = Field(None, validate_default=True,  # type: ignore[assignment]
                                    description="required: secured, or explicitly insecure")
    sampling_interval_ms: float | None = Field(
        None, ge=0, description="subscriptions: server sampling interval; default interval_s")
    queue_size: int = Field(10, ge=0, description="subscriptions: server-side queue per item")
    data_change_trigger: DataChangeTriggerName = Field(
        "status_value_timestamp", description="subscriptions: what makes the server report a "
        "value: status (quality changes only), status_value (quality or value changes), "
        "status_value_timestamp (also a new source timestamp: every measurement, including a "
        "repeated value, e.g. from a stuck sensor)")
    skip_unchanged: bool = Field(
        True, description="polling: skip a value whose source timestamp has not changed since "
        "the last poll, so one measurement is one sample")
    tags: list[OpcuaTag] = Field(default_factory=list)
    triggers: list[OpcuaTrigger] = Field(default_factory=list)

    @field_validator("security", mode="before")
    @classmethod
    def _security_stated(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("required: say how this OPC UA source is secured: "
                             + SECURE_OR_OPT_OUT)
        return value

    @model_validator(mode="after")
    def _something_to_read(self) -> OpcuaConfig:
        if not self.tags and not self.triggers:
            raise ValueError("an opcua source needs tags, triggers or both")
        if self.password is not None and self.username is None:
            raise ValueError("password given without username")
        if self.data_change_trigger == "status":
            with_deadband = [t.characteristic for t in self.tags if t.deadband]
            if with_deadband:
                raise ValueError(
                    "data_change_trigger status reports quality changes only, so a deadband "
                    f"means nothing (tags {', '.join(with_deadband)}); use status_value or "
                    "status_value_timestamp, or remove the deadband")
        return self


def quality_of(status: ua.StatusCode | None) -> Quality:
    if status is None or status.is_good():
        return "good"
    return "uncertain" if status.is_uncertain() else "bad"


def sample_from(characteristic: str, dv: ua.DataValue, part_id: str | None = None) -> Sample:
    quality = quality_of(dv.StatusCode)
    ts = dv.SourceTimestamp or dv.ServerTimestamp or datetime.now(UTC)
    if ts.tzinfo is None:  # asyncua returns naive UTC datetimes
        ts = ts.replace(tzinfo=UTC)
    value = dv.Value.Value if dv.Value is not None else None
    return Sample.of(characteristic, value, quality, ts, part_id)


@register
class OpcuaSource(Source):
    kind = "opcua"
    config_model = OpcuaConfig
    config: OpcuaConfig

    def __init__(self, config: OpcuaConfig) -> None:
        super().__init__(config)
        self.self_paced = config.mode == "subscribe" or bool(config.triggers)
        self._client: Client | None = None
        self._nodes: list[Node] = []
        self._by_nodeid: dict[ua.NodeId, str] = {}
        self._last_source_ts: dict[int, datetime | None] = {}
        self._pending: list[Sample] = []
        self._arrived = asyncio.Event()
        self._lost: str | None = None
        self._triggers: list[tuple[Node, Node | None, list[Node], OpcuaTrigger]] = []
        self._trigger_seen: dict[ua.NodeId, bool] = {}
        self._trigger_tasks: set[asyncio.Task[None]] = set()
        self._pump_task: asyncio.Task[None] | None = None
        self._warned_insecure = False
        self.fast_messages = 0  # publish responses decoded by opcua_fast
        self.generic_messages = 0  # and by asyncua (on a connection with the fast path)

    async def _resolve(self, client: Client, node_id: str) -> Node:
        """Turn a configured node id into a Node for this connection."""
        text = node_id.strip()
        if text.startswith("nsu="):
            uri, _, rest = text[4:].partition(";")
            try:
                index = await client.get_namespace_index(uri)
            except ValueError as exc:
                raise SourceError(f"namespace {uri!r} not on the server") from exc
            text = f"ns={index};{rest}"
        try:
            return client.get_node(ua.NodeId.from_string(text))
        except (ValueError, UaError) as exc:
            raise SourceError(f"invalid node id {node_id!r}: {exc}") from exc

    async def _make_client(self) -> Client:
        cfg = self.config
        # asyncua probes the server every `watchdog_intervall` s and, with a timeout of as much,
        # declares the link lost; at 1 s (its default) a busy server is "lost" when it is only
        # slow, so the probe gets the request timeout.
        client = Client(cfg.endpoint, timeout=cfg.timeout_s, auto_reconnect=False,
                        watchdog_intervall=max(1.0, cfg.timeout_s))
        client.name = client.description = f"shopfloor-spc edge agent ({cfg.name})"
        if cfg.username:
            client.set_user(cfg.username)
            if cfg.password is not None:
                client.set_password(cfg.password.get_secret_value())
        sec = cfg.security
        if sec.secured:
            await self._apply_security(client, sec)
        elif not self._warned_insecure:
            self._warned_insecure = True
            log.warning("%s: OPC UA without security (security.allow_insecure): values and "
                        "credentials travel in clear and the server is not authenticated",
                        cfg.name)
        return client

    async def _apply_security(self, client: Client, sec: OpcuaSecurity) -> None:
        from asyncua.crypto import uacrypto  # only needed with security on

        try:
            cert = await uacrypto.load_certificate(str(sec.certificate))
        except (OSError, ValueError) as exc:
            raise SourceError(f"cannot load security.certificate {sec.certificate}: {exc}"
                              ) from exc
        # The application URI must match the certificate's, or the server rejects the session.
        uris = _certificate_uris(cert)
        if uris:
            client.application_uri = uris[0]
        mode = getattr(ua.MessageSecurityMode, sec.mode)
        policy = security_policies.SecurityPolicyBasic256Sha256
        # The certificate the endpoint presents, fetched over the unsecured GetEndpoints call:
        # used only to refuse early with a clear message, never to decide whom to trust.
        endpoints = await client.connect_and_get_server_endpoints()
        try:
            endpoint = Client.find_endpoint(endpoints, mode, policy.URI)
        except ValueError as exc:
            raise SourceError(f"the server offers no {sec.policy} {sec.mode} endpoint") from exc
        presented = _first_certificate(endpoint.ServerCertificate)
        if sec.server_certificate is not None:
            server_der = _der_of(await _load_cert(sec.server_certificate))
            if presented != server_der:
                raise SourceError(
                    f"the server presents a certificate (SHA-256 {fingerprint(presented)}) other "
                    f"than security.server_certificate {sec.server_certificate} "
                    f"({fingerprint(server_der)}); refusing to connect")
        else:
            server_der = presented
        if sec.trusted_server_certs:
            trusted = {_der_of(await _load_cert(p)) for p in sec.trusted_server_certs}
            if server_der not in trusted:
                raise SourceError(
                    f"the server's certificate (SHA-256 {fingerprint(server_der)}) is not in "
                    "security.trusted_server_certs; refusing to connect (if it is the PLC's "
                    "own, as its fingerprint on the PLC shows, add it to the list)")
        # From here the channel is secured with `server_der`, and asyncua checks that the
        # session's server certificate is the same one.
        password = (sec.private_key_password.get_secret_value()
                    if sec.private_key_password else None)
        try:
            await client.set_security(
                policy, str(sec.certificate), str(sec.private_key),
                private_key_password=password,
                server_certificate=uacrypto.CertProperties(server_der, extension="der"),
                mode=mode)
        except (OSError, ValueError) as exc:
            raise SourceError(f"cannot set up {sec.policy} {sec.mode}: {exc}") from exc

    async def connect(self) -> None:
        cfg = self.config
        self._lost = None
        try:
            client = await asyncio.wait_for(self._make_client(), cfg.timeout_s * 2)
            self._client = client
            await asyncio.wait_for(client.connect(), cfg.timeout_s * 2)
            self._nodes = [await self._resolve(client, t.node_id) for t in cfg.tags]
            self._by_nodeid = {n.nodeid: t.characteristic for n, t in zip(self._nodes, cfg.tags,
                                                                           strict=True)}
            self._last_source_ts = {}
            self._pending = []
            if cfg.mode == "subscribe" and cfg.tags:
                await self._subscribe(client)
            if cfg.triggers:
                await self._subscribe_triggers(client)
        except SourceError:
            await self.close()
            raise
        except LINK_ERRORS as exc:
            await self.close()
            raise SourceError(f"cannot connect to {cfg.endpoint}: {_describe(exc)}") from exc

    async def _subscribe(self, client: Client) -> None:
        cfg = self.config
        interval = cfg.sampling_interval_ms if cfg.sampling_interval_ms is not None \
            else cfg.interval_s * 1000
        # Iterator mode with an unbounded queue: asyncua's default bounded queue drops the
        # oldest notifications when full, and its callback mode costs one task per value.
        sub = await client.create_subscription(interval, None, queue_maxsize=0)
        self._pump_task = asyncio.create_task(self._pump(sub))
        self._install_fast_path(client, sub.subscription_id)
        # Every item gets an explicit DataChangeFilter: without one the server reports on
        # status_value, which hides a sensor that repeats its value under new timestamps.
        requests = []
        for handle, (node, tag) in enumerate(zip(self._nodes, cfg.tags, strict=True), 1):
            flt = ua.DataChangeFilter()
            flt.Trigger = DATA_CHANGE_TRIGGERS[cfg.data_change_trigger]
            if tag.deadband:
                flt.DeadbandType = ua.DeadbandType.Absolute
                flt.DeadbandValue = tag.deadband
            params = ua.MonitoringParameters(
                ClientHandle=handle, SamplingInterval=interval, QueueSize=cfg.queue_size,
                DiscardOldest=True, Filter=flt)
            requests.append(ua.MonitoredItemCreateRequest(
                ItemToMonitor=ua.ReadValueId(NodeId=node.nodeid,
                                             AttributeId=ua.AttributeIds.Value),
                MonitoringMode=ua.MonitoringMode.Reporting, RequestedParameters=params))
        results: list[Any] = await sub.create_monitored_items(requests)
        failed = [r for r in results if isinstance(r, ua.StatusCode)]
        if failed:
            log.warning("%s: %d of %d monitored items refused, first: %s", cfg.name,
                        len(failed), len(results), failed[0])

    def _install_fast_path(self, client: Client, subscription_id: int) -> None:
        """Decode this subscription's data changes straight into samples (`opcua_fast`):
        the session's publish loop calls this client's `publish`, replaced here for this
        session only. Any message the fast decoder does not take (another subscription, a
        status change, anything unexpected) is decoded by asyncua as before and reaches
        `_pump`; the fast path's DataChangeNotifications reach asyncua emptied of their items,
        so they are acknowledged as usual and never delivered twice."""
        session = getattr(client.uaclient, "session", None)
        send = getattr(session, "_send_request", None)
        if session is None or send is None or not callable(getattr(session, "publish", None)):
            log.debug("%s: no fast path for this asyncua version", self.config.name)
            return
        characteristics = {handle: tag.characteristic
                           for handle, tag in enumerate(self.config.tags, 1)}

        async def publish(acks: list[ua.SubscriptionAcknowledgement]) -> ua.PublishResponse:
            request = ua.PublishRequest()
            request.Parameters.SubscriptionAcknowledgements = acks if acks else []
            data = await send(request, timeout=0)
            raw = bytes(data)[:len(data)]
            fast = opcua_fast.decode(raw, subscription_id, characteristics, sample_from)
            if fast is None:
                self.generic_messages += 1
                try:
                    return struct_from_binary(ua.PublishResponse, Buffer(raw))
                except Exception as exc:  # as asyncua's own publish
                    log.exception("%s: error parsing a notification from the server",
                                  self.config.name)
                    raise UaStructParsingError from exc
            response, samples = fast
            self.fast_messages += 1
            if samples:
                self._pending.extend(samples)
                self._arrived.set()
            return response

        session.publish = publish

    async def _pump(self, sub: Any) -> None:
        from asyncua.common.subscription import DataChangeEvent, StatusChangeEvent

        async for event in sub:
            if isinstance(event, DataChangeEvent):
                self._on_change(event.node, event.data.monitored_item.Value)
            elif isinstance(event, StatusChangeEvent):
                self._lost = f"subscription status {event.notification.Status}"
                self._arrived.set()

    async def _subscribe_triggers(self, client: Client) -> None:
        self._triggers = []
        self._trigger_seen = {}
        sub = await client.create_subscription(self.config.interval_s * 1000,
                                               _TriggerWatcher(self))
        for trig in self.config.triggers:
            trigger = await self._resolve(client, trig.node_id)
            part = await self._resolve(client, trig.part_id_node) if trig.part_id_node else None
            group = [await self._resolve(client, t.node_id) for t in trig.tags]
            self._triggers.append((trigger, part, group, trig))
            await sub.subscribe_data_change(trigger, queuesize=self.config.queue_size)

    def _on_change(self, node: Node, dv: ua.DataValue) -> None:
        characteristic = self._by_nodeid.get(node.nodeid)
        if characteristic is None:
            return
        self._pending.append(sample_from(characteristic, dv))
        self._arrived.set()

    def _on_trigger(self, node: Node, dv: ua.DataValue) -> None:
        # The first notification after subscribing reports the current value, not a change.
        if not self._trigger_seen.get(node.nodeid):
            self._trigger_seen[node.nodeid] = True
            return
        for trigger, part, group, trig in self._triggers:
            if trigger.nodeid == node.nodeid:
                task = asyncio.create_task(self._read_group(trigger, dv, part, group, trig))
                self._trigger_tasks.add(task)
                task.add_done_callback(self._trigger_tasks.discard)

    async def _read_group(self, trigger: Node, dv: ua.DataValue, part: Node | None,
                          group: list[Node], trig: OpcuaTrigger) -> None:
        client = self._client
        if client is None:
            return
        try:
            nodes = [*group, part] if part is not None else group
            values = await client.read_attributes(nodes)
        except LINK_ERRORS as exc:
            self._lost = f"triggered read failed: {_describe(exc)}"
            self._arrived.set()
            return
        part_dv = values[-1] if part is not None else dv
        part_value = part_dv.Value.Value if part_dv.Value is not None else None
        part_id = None if part_value is None else str(part_value)
        for tag, value in zip(trig.tags, values, strict=False):
            self._pending.append(sample_from(tag.characteristic, value, part_id))
        self._arrived.set()

    async def read(self) -> list[Sample]:
        client = self._client
        if client is None:
            raise SourceError("not connected")
        if self.self_paced:
            return await self._drain(client)
        return await self._poll(client)

    async def _poll(self, client: Client) -> list[Sample]:
        try:
            values = await client.read_attributes(self._nodes)
        except LINK_ERRORS as exc:
            raise SourceError(f"read failed: {_describe(exc)}") from exc
        samples = []
        for i, (tag, dv) in enumerate(zip(self.config.tags, values, strict=True)):
            if self.config.skip_unchanged and dv.SourceTimestamp is not None:
                if self._last_source_ts.get(i) == dv.SourceTimestamp:
                    continue
                self._last_source_ts[i] = dv.SourceTimestamp
            samples.append(sample_from(tag.characteristic, dv))
        samples.extend(self._take_pending())
        return samples

    async def _drain(self, client: Client) -> list[Sample]:
        # Wake at least once a second to notice a lost connection even when nothing changes.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._arrived.wait(), min(1.0, self.config.interval_s * 2))
        self._arrived.clear()
        from asyncua.client.ua_client import UaClientState

        if self._lost is None and client.uaclient.state is not UaClientState.CONNECTED:
            self._lost = "connection to the server lost"
        if self._lost is None and self._pump_task is not None and self._pump_task.done():
            self._lost = "subscription ended"  # the server closed it or the pump failed
        if self._lost is not None:
            pending = self._take_pending()
            if pending:  # hand out what arrived before the loss; the next read raises
                return pending
            raise SourceError(self._lost)
        if self.config.mode == "poll" and self.config.tags:
            return await self._poll(client)
        return self._take_pending()

    def _take_pending(self) -> list[Sample]:
        pending, self._pending = self._pending, []
        return pending

    async def close(self) -> None:
        client, self._client = self._client, None
        for task in [*self._trigger_tasks, self._pump_task]:
            if task is not None:
                task.cancel()
        self._pump_task = None
        if client is not None:
            try:
                await asyncio.wait_for(client.disconnect(), 2)
            except Exception:  # the server may already be gone; nothing left to release
                with contextlib.suppress(Exception):
                    client.disconnect_socket()

    def tag_rows(self) -> list[tuple[str, str, str]]:
        rows = [(t.node_id, t.characteristic, t.unit) for t in self.config.tags]
        for trig in self.config.triggers:
            rows += [(f"{t.node_id} (on {trig.node_id})", t.characteristic, t.unit)
                     for t in trig.tags]
        return rows


class _TriggerWatcher:
    def __init__(self, source: OpcuaSource) -> None:
        self.source = source

    def datachange_notification(self, node: Node, val: Any, data: Any) -> None:
        self.source._on_trigger(node, data.monitored_item.Value)

    def status_change_notification(self, status: Any) -> None:
        self.source._lost = f"trigger subscription status {status}"


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


async def _load_cert(path: Path) -> Any:
    from asyncua.crypto import uacrypto

    try:
        return await uacrypto.load_certificate(str(path))
    except (OSError, ValueError) as exc:
        raise SourceError(f"cannot load certificate {path}: {exc}") from exc


def _der_of(cert: Any) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding

    return cert.public_bytes(Encoding.DER)


def fingerprint(der: bytes) -> str:
    """SHA-256 of a DER certificate as the PLCs and `openssl x509 -fingerprint` show it."""
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


def _first_certificate(der: bytes) -> bytes:
    """A server may send its certificate followed by its chain; the first one is its own."""
    length = int.from_bytes(der[2:4], "big") + 4  # DER SEQUENCE with a two-byte length
    return der[:length]


def _certificate_uris(cert: Any) -> list[str]:
    from cryptography import x509

    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return []
    return list(san.value.get_values_for_type(x509.UniformResourceIdentifier))
