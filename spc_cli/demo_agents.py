"""Edge-agent configurations for the demo: one agent per protocol, reading the simulated line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def agent_config(
    *, protocol: str, server_url: str, api_key: str, buffer_path: Path, opcua_port: int,
    modbus_port: int, interval_s: float, characteristics: list[dict[str, Any]],
) -> str:
    """YAML for an agent reading `characteristics` over `protocol` ('opcua' or 'modbus')."""
    if protocol == "opcua":
        polled = [c for c in characteristics if "trigger" not in c["source"]]
        lots = [c for c in characteristics if "trigger" in c["source"]]
        source: dict[str, Any] = {
            "kind": "opcua", "name": "cnc1-opcua", "mode": "poll", "interval_s": interval_s,
            "endpoint": f"opc.tcp://127.0.0.1:{opcua_port}/shopfloor-spc/",
            # The demo's simulator listens on loopback only and offers no security; a plant's
            # agent pins the PLC's certificate instead (edge_agent/examples/opcua.yaml).
            "security": {"policy": "None", "allow_insecure": True},
            "tags": [{"node_id": c["source"]["node"], "characteristic": c["key"],
                      "unit": c["unit"]} for c in polled],
            # one sample per inspected lot: read the count when the lot counter changes
            "triggers": [{"node_id": c["source"]["trigger"],
                          "tags": [{"node_id": c["source"]["node"], "characteristic": c["key"],
                                    "unit": c["unit"]}]} for c in lots],
        }
    elif protocol == "modbus":
        # Registers hold the latest sample with no timestamp: polling a little slower than the
        # line samples skips one now and then but never reads a sample twice (a repeated value
        # would shrink the subgroup ranges and the limits fitted on them).
        source = {
            "kind": "modbus", "name": "cnc1-modbus", "host": "127.0.0.1", "port": modbus_port,
            "unit_id": 1, "interval_s": round(interval_s * 1.1, 3),
            "tags": [{"characteristic": c["key"], "address": c["source"]["register"],
                      "type": "float32", "byte_order": "ABCD", "unit": c["unit"]}
                     for c in characteristics],
        }
    else:
        raise ValueError(f"protocol must be 'opcua' or 'modbus', not {protocol!r}")
    config = {
        "agent": {"name": f"demo-{protocol}"},
        "server": {"url": server_url, "api_key": api_key},
        "buffer": {"path": str(buffer_path)},
        "upload": {"batch_size": 500, "interval_s": 0.5},
        "heartbeat": {"interval_s": 5},
        "sources": [source],
    }
    header = "# Written by `spc demo`; edit edge_agent/examples/ for your own line.\n"
    return header + yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
