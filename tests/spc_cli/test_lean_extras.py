"""Each extra stays lean: the edge agent runs with no numpy, scipy or server stack present."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("numpy", "scipy", "fastapi", "uvicorn", "asyncpg", "starlette")

# Runs in a fresh interpreter where importing any heavy package fails, as on a Raspberry Pi with
# only `pip install 'shopfloor-spc[edge]'`.
BLOCKED_RUN = f"""
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {HEAVY!r}:
            raise ModuleNotFoundError("No module named " + repr(name), name=name)
sys.meta_path.insert(0, Block())
import pkgutil, edge_agent, edge_agent.sources
for m in pkgutil.walk_packages(edge_agent.__path__, "edge_agent."):
    __import__(m.name)
from spc_cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def extras() -> dict[str, list[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["dependencies"] == []  # nothing forced on every install
    return project["optional-dependencies"]


def names(requirements: list[str]) -> set[str]:
    return {r.split("[")[0].split(">")[0].split("=")[0].split("<")[0].strip().lower()
            for r in requirements}


def test_edge_extra_declares_no_heavy_dependency() -> None:
    assert not names(extras()["edge"]) & set(HEAVY)
    assert {"numpy", "scipy"} <= names(extras()["core"])


def test_agent_imports_and_runs_without_heavy_packages(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", BLOCKED_RUN, "agent", "--help"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert "check-config" in proc.stdout
    # and a server command on that install says what to install instead of a traceback
    proc = subprocess.run([sys.executable, "-c", BLOCKED_RUN, "server", "--help"],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2 and "pip install 'shopfloor-spc[server]'" in proc.stderr
