"""The line as an OPC UA server: Objects/<Line>/<Machine>/<Variable>, ns=2;s=<Line>.<Machine>.<Var>.

Each variable is a Double of AnalogItemType with EngineeringUnits and EURange properties; every
sample is written with its source timestamp, and with status BadSensorFailure and a null value
while the sensor has dropped out. A device disconnect stops the server; a reconnect builds it
again on the same port; a machine's disconnect turns its nodes BadNoCommunication.

Attribute streams are UInt32 count variables (ns=2;s=<Line>.<Machine>.<stream>) with children
`sample_size` and `lot`; part-mode machines add `part_id` (String), `part_complete` (Boolean,
toggles per part) and `part_count` (UInt32, written after the part's measurements).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable
from datetime import UTC, datetime

from asyncua import Node, Server, ua

from simulators.config import LineConfig, VariableConfig
from simulators.line import Event, Published, PublishedLot
from simulators.opcua_security import (
    APPLICATION_URI,
    OpcUaSecurity,
    PasswordUsers,
    configure_security,
)

log = logging.getLogger(__name__)

NAMESPACE_URI = "urn:shopfloor-spc:simulator"
ENDPOINT_PATH = "/shopfloor-spc/"


UINT32 = ua.VariantType.UInt32
STRING = ua.VariantType.String
BOOLEAN = ua.VariantType.Boolean
# Part mode tags of a machine; part_count is written last, so it is the trigger to watch.
PART_TAGS = {"part_id": STRING, "part_complete": BOOLEAN, "part_count": UINT32}
_ZERO: dict[ua.VariantType, object] = {UINT32: 0, STRING: "", BOOLEAN: False}


def _good(value: object, vtype: ua.VariantType, ts: datetime, now: datetime) -> ua.DataValue:
    return ua.DataValue(ua.Variant(value, vtype), StatusCode=ua.StatusCode(ua.StatusCodes.Good),
                        SourceTimestamp=ts, ServerTimestamp=now)


def node_id(line: str, *path: str) -> str:
    return ".".join((line, *path))


def endpoint_url(host: str, port: int) -> str:
    return f"opc.tcp://{host}:{port}{ENDPOINT_PATH}"


def eu_information(unit: str) -> ua.EUInformation:
    # UNECE codes are what clients key on; the common ones here, 0 ("unknown") otherwise.
    codes = {"mm": 4468306, "um": 4951373, "°C": 4408652, "degC": 4408652, "bar": 4342098,
             "N": 20033, "Nm": 5129805, "rpm": 5394509, "s": 21280, "%": 20529}
    return ua.EUInformation(
        NamespaceUri="http://www.opcfoundation.org/UA/units/un/cefact",
        UnitId=codes.get(unit, 0),
        DisplayName=ua.LocalizedText(unit),
        Description=ua.LocalizedText(unit),
    )


class OpcUaLine:
    def __init__(
        self,
        config: LineConfig,
        host: str,
        port: int,
        timestamp: Callable[[float], datetime],
        security: OpcUaSecurity | None = None,
    ) -> None:
        self.config = config
        self.timestamp = timestamp
        self.host = host
        self.port = port
        self.security = security or OpcUaSecurity()
        self.server: Server | None = None
        self.namespace_index = 0
        self._nodes: dict[tuple[str, str], ua.NodeId] = {}
        self._latest: dict[tuple[str, str], ua.DataValue] = {}
        self._offline: set[str] = set()

    @property
    def endpoint(self) -> str:
        return endpoint_url(self.host, self.port)

    async def _build(self) -> Server:
        users = PasswordUsers(self.security.users) if self.security.users else None
        server = Server(user_manager=users)
        await server.init()
        server.set_endpoint(self.endpoint)
        server.set_server_name(f"shopfloor-spc simulator {self.config.line}")
        await server.set_application_uri(APPLICATION_URI)
        await configure_security(server, self.security, self.host)
        idx = await server.register_namespace(NAMESPACE_URI)
        self.namespace_index = idx
        line = self.config.line
        line_node = await server.nodes.objects.add_object(
            ua.NodeId(line, idx), ua.QualifiedName(line, idx)
        )
        for machine in self.config.machines:
            m_node = await line_node.add_object(
                ua.NodeId(node_id(line, machine.name), idx), ua.QualifiedName(machine.name, idx)
            )
            for var in machine.variables:
                nid = ua.NodeId(node_id(line, machine.name, var.name), idx)
                await self._add_variable(server, m_node, nid, var, idx)
                self._nodes[(machine.name, var.name)] = nid
            for stream in machine.attributes:
                count = await self._add_plain(server, m_node, machine.name, stream.name, UINT32)
                for child in ("sample_size", "lot"):
                    await self._add_plain(server, count, machine.name, f"{stream.name}.{child}",
                                          UINT32, browse_name=child)
            if machine.part_mode is not None:
                for name, vtype in PART_TAGS.items():
                    await self._add_plain(server, m_node, machine.name, name, vtype)
        return server

    async def _add_plain(
        self, server: Server, parent: Node, machine: str, name: str, vtype: ua.VariantType,
        browse_name: str | None = None,
    ) -> Node:
        """A counter or tag (no engineering units), Bad until first written."""
        idx = self.namespace_index
        nid = ua.NodeId(node_id(self.config.line, machine, name), idx)
        node = await parent.add_variable(
            nid, ua.QualifiedName(browse_name or name, idx), ua.Variant(_ZERO[vtype], vtype),
            varianttype=vtype,
        )
        await server.write_attribute_value(nid, ua.DataValue(
            ua.Variant(), StatusCode=ua.StatusCode(ua.StatusCodes.BadWaitingForInitialData)
        ))
        self._nodes[(machine, name)] = nid
        return node

    async def _add_variable(
        self, server: Server, parent: Node, nid: ua.NodeId, var: VariableConfig, idx: int
    ) -> None:
        node = await parent.add_variable(
            nid,
            ua.QualifiedName(var.name, idx),
            ua.Variant(math.nan, ua.VariantType.Double),
            datatype=ua.ObjectIds.Double,
        )
        # An AnalogItemType, as OPC UA Part 8 models a measured value with a range and units.
        await node.delete_reference(ua.ObjectIds.BaseDataVariableType,
                                    ua.ObjectIds.HasTypeDefinition, bidirectional=False)
        await node.add_reference(ua.ObjectIds.AnalogItemType, ua.ObjectIds.HasTypeDefinition,
                                 bidirectional=False)
        if var.description:
            await node.write_attribute(
                ua.AttributeIds.Description,
                ua.DataValue(ua.Variant(ua.LocalizedText(var.description))),
            )
        await node.add_property(
            ua.NodeId(f"{nid.Identifier}.EngineeringUnits", idx),
            ua.QualifiedName("EngineeringUnits", 0),
            eu_information(var.unit),
        )
        low, high = var.range
        await node.add_property(
            ua.NodeId(f"{nid.Identifier}.EURange", idx),
            ua.QualifiedName("EURange", 0),
            ua.Range(Low=low, High=high),
        )
        # Not yet sampled: say so rather than serve a made-up value.
        await server.write_attribute_value(nid, ua.DataValue(
            ua.Variant(math.nan, ua.VariantType.Double),
            StatusCode=ua.StatusCode(ua.StatusCodes.BadWaitingForInitialData),
        ))

    async def start(self) -> None:
        self.server = await self._build()
        await self.server.start()
        for key, dv in self._latest.items():
            await self.server.write_attribute_value(self._nodes[key], dv)
        for machine in self._offline:
            await self._set_machine_connected(machine, False)
        log.info("OPC UA serving on %s", self.endpoint)

    async def stop(self) -> None:
        if self.server is not None:
            server, self.server = self.server, None
            # asyncua's clock task sleeps a second between updates and stop() waits for it;
            # cancel it so a disconnect (and a shutdown) is immediate.
            clock_task = server.iserver.time_task
            if clock_task is not None:
                clock_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await clock_task
                server.iserver.time_task = None
            await server.stop()

    async def on_events(self, events: list[Event]) -> None:
        now = datetime.now(UTC)
        for e in events:
            if isinstance(e, Published):
                s = e.sample
                good = s.quality == "good" and s.value is not None
                dv = ua.DataValue(
                    # A bad sample has no value (null), never a stale or made-up one.
                    ua.Variant(s.value, ua.VariantType.Double) if good else ua.Variant(),
                    StatusCode=ua.StatusCode(
                        ua.StatusCodes.Good if good else ua.StatusCodes.BadSensorFailure
                    ),
                    SourceTimestamp=self.timestamp(s.t),
                    ServerTimestamp=now,
                )
                await self._set((e.machine, e.variable), dv)
            elif isinstance(e, PublishedLot):
                ts = self.timestamp(e.lot.t)
                # Size and lot number first: a client watching the count reads a complete lot.
                await self._set((e.machine, f"{e.stream}.sample_size"),
                                _good(e.lot.size, UINT32, ts, now))
                await self._set((e.machine, f"{e.stream}.lot"),
                                _good(e.lot.index + 1, UINT32, ts, now))
                await self._set((e.machine, e.stream), _good(e.lot.count, UINT32, ts, now))
            else:
                ts = self.timestamp(e.t)
                await self._set((e.machine, "part_id"), _good(e.part_id, STRING, ts, now))
                await self._set((e.machine, "part_complete"),
                                _good(bool(e.count % 2), BOOLEAN, ts, now))
                await self._set((e.machine, "part_count"), _good(e.count, UINT32, ts, now))

    async def _set(self, key: tuple[str, str], dv: ua.DataValue) -> None:
        self._latest[key] = dv
        if self.server is not None and key[0] not in self._offline:
            await self.server.write_attribute_value(self._nodes[key], dv)

    async def _set_machine_connected(self, machine: str, connected: bool) -> None:
        """A machine behind this server lost its link: its nodes say so, with no value."""
        if connected:
            self._offline.discard(machine)
        else:
            self._offline.add(machine)
        if self.server is None:
            return
        lost = ua.DataValue(ua.Variant(), StatusCode=ua.StatusCode(
            ua.StatusCodes.BadNoCommunication), ServerTimestamp=datetime.now(UTC))
        for key, nid in self._nodes.items():
            if key[0] == machine:
                dv = self._latest.get(key) if connected else lost
                if dv is not None:
                    await self.server.write_attribute_value(nid, dv)

    async def on_connection(self, machine: str | None, connected: bool) -> None:
        if machine is not None:
            await self._set_machine_connected(machine, connected)
            return
        if connected:
            await self.start()
        else:
            await self.stop()
