"""Shell scripts in deploy/: `bash -n`, and the Raspberry Pi installer's options and plan.

The installer itself needs root, systemd and a Pi; here it runs with --dry-run, which prints
every command it would run and changes nothing.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SCRIPTS = sorted(DEPLOY.rglob("*.sh"))
INSTALL = DEPLOY / "install-agent-rpi.sh"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(INSTALL), *args], capture_output=True, text=True,
                          timeout=60, env={**os.environ, **(env or {})})


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_shell_syntax_and_strict_mode(path: Path) -> None:
    proc = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    text = path.read_text()
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "\nset -euo pipefail\n" in text
    assert os.access(path, os.X_OK), f"{path.name} is not executable"


def test_bash_n_catches_a_syntax_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sh"
    bad.write_text(INSTALL.read_text().replace("esac", "", 1))
    assert subprocess.run(["bash", "-n", str(bad)], capture_output=True).returncode != 0


def test_help_and_bad_options() -> None:
    proc = run("--help")
    assert proc.returncode == 0
    for option in ("--instance", "--source", "--config", "--server-url", "--no-enable",
                   "--dry-run", "/opt/spc-agent", "/etc/spc-agent", "spc-agent@"):
        assert option in proc.stdout, option
    assert run("--frobnicate").returncode == 2
    assert run("--instance", "bad name").returncode == 2
    assert run("--source", "/nonexistent").returncode == 2
    assert run("--config", "/nonexistent.yaml", "--dry-run").returncode == 2


def test_dry_run_plan(tmp_path: Path) -> None:
    config = ROOT / "edge_agent" / "examples" / "opcua.yaml"
    instance = "dryrun-test-line"
    proc = run("--dry-run", "--instance", instance, "--config", str(config),
               "--server-url", "https://spc.example.com", env={"SPC_AGENT_KEY": "spc_x_y"})
    assert proc.returncode == 0, proc.stderr
    commands = [ln[2:] for ln in proc.stdout.splitlines() if ln.startswith("+ ")]
    pip = [c for c in commands if "/opt/spc-agent/bin/pip install" in c and "[" in c]
    assert pip == [f"/opt/spc-agent/bin/pip install --quiet --upgrade {ROOT}[edge]"]
    assert f"install -m 0640 -o root -g spc-agent {config} /etc/spc-agent/{instance}.yaml" in \
        commands
    assert "install -d -m 0750 -o root -g spc-agent /etc/spc-agent" in commands
    assert any(c.startswith("write /etc/spc-agent/") and "SPC_SERVER_URL=https://spc.example"
               in c for c in commands)
    assert "spc_x_y" not in proc.stdout  # the key is never printed
    assert any("spc agent check-config" in c for c in commands)
    assert commands[-2:] == [f"systemctl enable spc-agent@{instance}",
                             f"systemctl restart spc-agent@{instance}"]
    assert not Path(f"/etc/spc-agent/{instance}.yaml").exists()  # nothing was changed
    # a wheel as the source
    wheel = tmp_path / "shopfloor_spc-0.1.0-py3-none-any.whl"
    wheel.write_bytes(b"")
    proc = run("--dry-run", "--instance", instance, "--source", str(wheel), "--no-enable")
    assert f"/opt/spc-agent/bin/pip install --quiet --upgrade {wheel}[edge]" in proc.stdout
    assert "+ systemctl enable" not in proc.stdout and "+ systemctl restart" not in proc.stdout
