"""deploy/server.Dockerfile and deploy/agent.Dockerfile, checked without building them.

No container engine runs here, so the Dockerfiles are parsed: every file they COPY exists in the
repository and is let through by their .dockerignore, they copy every Python package the wheel is
built from, they run as a non-root user, and the agent image installs the [edge] extra only (and
that extra pulls no server stack).
"""

from __future__ import annotations

import fnmatch
import re
import shlex
import tomllib
import warnings
from pathlib import Path

import pytest
from setuptools import find_packages
from setuptools.config.pyprojecttoml import read_configuration

from server.core.config import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DOCKERFILES = {"server": DEPLOY / "server.Dockerfile", "agent": DEPLOY / "agent.Dockerfile"}
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    out, buf = [], ""
    for line in path.read_text().splitlines():
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        buf += line
        word, _, rest = buf.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    return out


def stages(path: Path) -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for ins in instructions(path):
        if ins[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(ins)
    return result


def copy_sources(path: Path) -> list[tuple[str, str]]:
    found = []
    for word, args in instructions(path):
        if word in ("COPY", "ADD"):
            parts = [p for p in shlex.split(args) if not p.startswith("--")]
            if "--from" in args:
                continue
            found += [(src, parts[-1]) for src in parts[:-1]]
    return found


def ignored(rel: str, patterns: list[str]) -> bool:
    """Docker's .dockerignore semantics for one path: the last matching pattern decides."""
    result = False
    candidates = [rel] + [str(p) for p in Path(rel).parents if str(p) != "."]
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern[1:] if negate else pattern
        pat = pat.rstrip("/")
        if any(fnmatch.fnmatch(c, pat) for c in candidates):
            result = not negate
    return result


@pytest.mark.parametrize("name", DOCKERFILES)
def test_base_image_and_user(name: str) -> None:
    path = DOCKERFILES[name]
    text = path.read_text()
    m = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M)
    assert m and re.fullmatch(r"python:3\.11-slim(-\w+)?", m.group(1)), "python:3.11-slim based"
    *_, final = stages(path)
    assert final[0] == ("FROM", "${PYTHON_IMAGE}")
    users = [args for word, args in final if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "runs as a non-root user"
    words = [w for w, _ in final]
    assert words.index("USER") < words.index("ENTRYPOINT")
    assert "arm64" in text, "multi-arch notes"


@pytest.mark.parametrize("name", DOCKERFILES)
def test_copied_files_exist_and_pass_the_dockerignore(name: str) -> None:
    path = DOCKERFILES[name]
    ignore = Path(str(path) + ".dockerignore")
    patterns = [ln.strip() for ln in ignore.read_text().splitlines()
                if ln.strip() and not ln.startswith("#")]
    sources = copy_sources(path)
    assert sources
    for src, _ in sources:
        assert (ROOT / src).exists(), f"{path.name}: COPY {src}: no such file in the repository"
        assert not ignored(src, patterns), f"{path.name}: COPY {src} is excluded by {ignore.name}"
    assert ignored("tests/conftest.py", patterns) and ignored(".venv/bin/python", patterns)
    # every package of the wheel is in the build context
    include = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    tops = {p.split(".")[0] for p in find_packages(str(ROOT), include=include)}
    copied = {src.rstrip("/") for src, _ in sources}
    assert tops <= copied, f"{path.name} does not copy {sorted(tops - copied)}"
    assert {"pyproject.toml", "README.md"} <= copied


def _pip_installs(path: Path) -> list[str]:
    return [args for word, args in instructions(path) if word == "RUN" and "pip install" in args]


def test_agent_installs_only_the_edge_extra() -> None:
    (install,) = _pip_installs(DOCKERFILES["agent"])
    assert re.search(r"shopfloor_spc-\*\.whl\)\[edge\]\"", install), install
    assert not re.search(r"\[(server|sim|dev)", DOCKERFILES["agent"].read_text())
    edge = " ".join(PYPROJECT["project"]["optional-dependencies"]["edge"]).lower()
    for heavy in ("fastapi", "uvicorn", "asyncpg", "playwright", "shopfloor-spc["):
        assert heavy not in edge, f"the edge extra pulls {heavy}"
    *_, final = stages(DOCKERFILES["agent"])
    assert ("ENTRYPOINT", '["spc", "agent"]') in final


def test_server_image_installs_the_server_extra_and_serves_the_dashboard() -> None:
    (install,) = _pip_installs(DOCKERFILES["server"])
    assert re.search(r"shopfloor_spc-\*\.whl\)\[server\]\"", install), install
    text = DOCKERFILES["server"].read_text()
    m = re.search(r"SPC_DASHBOARD_DIR=(\S+)", text)
    assert m and "dashboard_dir" in Settings.model_fields
    assert ("dashboards/web", m.group(1)) in copy_sources(DOCKERFILES["server"])
    assert (ROOT / "dashboards/web/index.html").is_file()
    # the migrations ship inside the wheel (a namespace package): the server applies them at start
    assert "*.sql" in PYPROJECT["tool"]["setuptools"]["package-data"]["*"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        config = read_configuration(ROOT / "pyproject.toml", expand=True)
    assert "server.migrations" in config["tool"]["setuptools"]["packages"]
    assert list((ROOT / "server/migrations").glob("*.sql"))
    assert "/api/v1/health" in text
    assert PYPROJECT["project"]["scripts"]["spc"] == "spc_cli.main:main"


def test_dockerignore_semantics() -> None:
    patterns = ["*", "!server/", "**/__pycache__"]
    assert ignored("tests", patterns) and not ignored("server/main.py", patterns)
    assert ignored("server/__pycache__", patterns)
