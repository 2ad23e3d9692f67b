"""Edge-agent configurations for the demo: one agent per protocol, reading the simulated line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def agent_config(
    *, protocol: str, server_url: str, api_key: str, buffer_path: Path, opcua_port: int,
    modbus_port: int, interval_s: float, tags: list[dict[str, Any]],
) -> str:
    """YAML for an agent reading `tags` over `protocol` ('opcua' or 'modbus')."""
    if protocol == "opcua":
        source: dict[str, Any] = {
            "kind": "opcua", "name": "cnc1-opcua", "mode": "poll", "interval_s": interval_s,
            "endpoint": f"opc.tcp://127.0.0.1:{opcua_port}/shopfloor-spc/",
            "tags": [{"node_id": t["node"], "characteristic": t["key"], "unit": t["unit"]}
                     for t in tags],
        }
    elif protocol == "modbus":
        source = {
            "kind": "modbus", "name": "cnc1-modbus", "host": "127.0.0.1", "port": modbus_port,
            "unit_id": 1, "interval_s": interval_s,
            "tags": [{"characteristic": t["key"], "address": t["register"], "type": "float32",
                      "byte_order": "ABCD", "unit": t["unit"]} for t in tags],
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
