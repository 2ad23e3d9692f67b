"""deploy/systemd units: `systemd-analyze verify` (systemd's own parser) and required keys."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNITS = sorted((ROOT / "deploy" / "systemd").glob("*.service"))
SERVER_UNIT = ROOT / "deploy" / "systemd" / "spc-server.service"


def parse(path: Path) -> dict[str, dict[str, list[str]]]:
    """Unit file sections; a key may repeat (systemd appends), so values are lists."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for line in path.read_text().splitlines():
        s = line.strip()
        if not s or s.startswith(("#", ";")):
            continue
        if s.startswith("[") and s.endswith("]"):
            current = sections.setdefault(s[1:-1], {})
            continue
        assert current is not None, f"{path.name}: key outside a section: {s}"
        key, sep, value = s.partition("=")
        assert sep, f"{path.name}: not a key=value line: {s}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def test_server_unit_restart_policy_and_hardening() -> None:
    unit = parse(SERVER_UNIT)
    svc = {k: v[-1] for k, v in unit["Service"].items()}
    assert svc["ExecStart"].endswith("/bin/spc server")
    assert svc["User"] not in ("root", "0") and svc["Group"]
    assert svc["Restart"] == "always" and float(svc["RestartSec"]) > 0
    assert svc["RestartPreventExitStatus"] == "2"  # invalid settings: `spc server` exits 2
    assert unit["Unit"]["StartLimitIntervalSec"] == ["0"]
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict",
                       "ProtectHome": "yes", "PrivateTmp": "yes", "PrivateDevices": "yes",
                       "RestrictSUIDSGID": "yes", "CapabilityBoundingSet": "",
                       "ProtectKernelTunables": "yes", "LockPersonality": "yes"}.items():
        assert svc.get(key) == value, key
    assert svc["ReadWritePaths"] == "/var/lib/spc-server"
    assert svc["StateDirectory"] == "spc-server"
    assert svc["EnvironmentFile"] == "/etc/spc-server/server.env"
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]


def _analyze() -> str | None:
    return shutil.which("systemd-analyze")


@pytest.mark.skipif(_analyze() is None, reason="systemd-analyze is not installed")
@pytest.mark.parametrize("path", UNITS, ids=lambda p: p.name)
def test_systemd_analyze_verify_is_silent(path: Path, tmp_path: Path) -> None:
    # The ExecStart binary lives in a venv that does not exist on this machine: point it at
    # /bin/true so verify checks everything else (unknown keys, bad values, sections).
    lines = [("ExecStart=/bin/true" if ln.startswith("ExecStart=") else ln)
             for ln in path.read_text().splitlines()]
    name = path.name.replace("@.service", "@test.service")
    copy = tmp_path / name
    copy.write_text("\n".join(lines) + "\n")
    proc = subprocess.run([_analyze(), "verify", str(copy)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and not proc.stderr.strip() and not proc.stdout.strip(), (
        proc.stdout + proc.stderr)


@pytest.mark.skipif(_analyze() is None, reason="systemd-analyze is not installed")
def test_verify_would_catch_a_typo(tmp_path: Path) -> None:
    copy = tmp_path / "spc-server.service"
    copy.write_text(SERVER_UNIT.read_text().replace("ExecStart=/opt/spc-server/bin/spc server",
                                                    "ExecStart=/bin/true")
                    .replace("NoNewPrivileges=yes", "NoNewPrivilege=yes"))
    proc = subprocess.run([_analyze(), "verify", str(copy)], capture_output=True, text=True,
                          timeout=60)
    assert "Unknown key" in proc.stderr
