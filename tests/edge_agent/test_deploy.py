"""The systemd unit is valid, hardened, restarts, and runs the agent with its config."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "deploy" / "systemd" / "spc-agent@.service"


def settings() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def test_unit_runs_the_agent_with_restart_and_hardening() -> None:
    s = settings()
    assert s["ExecStart"] == ["/opt/spc-agent/bin/spc agent --config /etc/spc-agent/%i.yaml"]
    assert s["Restart"] == ["always"] and s["RestartPreventExitStatus"] == ["2"]
    for key in ("NoNewPrivileges", "ProtectSystem", "ProtectHome", "PrivateTmp",
                "RestrictNamespaces", "MemoryDenyWriteExecute"):
        assert s[key][0] in ("yes", "strict"), key
    assert s["CapabilityBoundingSet"] == [""] and s["User"] == ["spc-agent"]
    assert s["KillSignal"] == ["SIGTERM"]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    spc = Path(sys.executable).parent / "spc"
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace("/opt/spc-agent/bin/spc", str(spc)))
    out = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and not out.stderr.strip(), out.stderr


def test_edge_agent_imports_no_heavy_stack() -> None:
    code = ("import sys, edge_agent.cli, edge_agent.agent, edge_agent.sources;"
            "import edge_agent.sources.opcua, edge_agent.sources.modbus;"
            "heavy = sorted({m.split('.')[0] for m in sys.modules} & "
            "{'numpy', 'scipy', 'fastapi', 'uvicorn', 'asyncpg', 'server', 'spc_core'});"
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=REPO, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
