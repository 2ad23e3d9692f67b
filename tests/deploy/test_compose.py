"""deploy/compose.yml, checked without a container engine.

No Docker daemon runs here (and `docker compose` is not installed), so the file is parsed with
PyYAML and checked the way Compose would read it: variable interpolation (`${VAR}`,
`${VAR:-default}`, `${VAR:?message}`, `$$`), the merge key, healthchecks and start order,
pinned images, bind-mount sources that exist, and settings the server and Grafana really read.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from server.core.config import ENV_PREFIX, Settings
from tests.fixtures.net import free_port
from tests.fixtures.server import LiveServer

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yml"
REQUIRED = {"POSTGRES_PASSWORD", "SPC_DB_PASSWORD", "GRAFANA_DB_PASSWORD", "GRAFANA_ADMIN_PASSWORD"}
FULL_ENV = {name: f"pw-{name.lower()}" for name in REQUIRED}

_VAR = re.compile(r"\$\$|\$\{(?P<name>\w+)(?:(?P<op>:-|:\?|-|\?)(?P<arg>[^}]*))?\}|\$(?P<bare>\w+)")


class MissingVariable(Exception):
    pass


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's interpolation of one string (the subset the spec defines)."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group("name") or m.group("bare")
        op, arg = m.group("op"), m.group("arg")
        value = env.get(name)
        if op in (":-", "-"):
            return value if value or (op == "-" and value is not None) else arg
        if op in (":?", "?") and not value:
            raise MissingVariable(f"{name}: {arg}")
        return value or ""

    return _VAR.sub(sub, text)


def resolve(node: Any, env: dict[str, str]) -> Any:
    if isinstance(node, str):
        return interpolate(node, env)
    if isinstance(node, list):
        return [resolve(v, env) for v in node]
    if isinstance(node, dict):
        return {k: resolve(v, env) for k, v in node.items()}
    return node


@pytest.fixture(scope="module")
def raw() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())  # safe_load applies the << merge keys


@pytest.fixture(scope="module")
def compose(raw: dict[str, Any]) -> dict[str, Any]:
    return resolve(raw, FULL_ENV)


def test_interpolation_helper() -> None:
    assert interpolate("a${X:-d}b$$c", {}) == "adb$c"
    assert interpolate("${X:-d}", {"X": "v"}) == "v"
    with pytest.raises(MissingVariable, match="X: say"):
        interpolate("${X:?say}", {"X": ""})


def test_services_and_volumes(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"db", "server", "grafana"}
    named = set(compose["volumes"])
    assert {"spc-db", "grafana-data"} <= named
    for name, svc in compose["services"].items():
        assert svc.get("restart") == "unless-stopped", name
        for vol in svc.get("volumes", []):
            source = vol.split(":")[0]
            if source.startswith((".", "/")):
                assert (DEPLOY / source).exists(), f"{name}: bind mount {source} does not exist"
            else:
                assert source in named, f"{name}: volume {source} is not declared"
    db_volumes = compose["services"]["db"]["volumes"]
    assert "spc-db:/var/lib/postgresql/data" in db_volumes


def test_every_service_has_a_healthcheck_and_waits_for_healthy_dependencies(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    for name, svc in services.items():
        check = svc.get("healthcheck")
        assert check and check["test"][0] in ("CMD", "CMD-SHELL"), name
        assert check.get("interval") and check.get("retries"), name
        for dep, cond in (svc.get("depends_on") or {}).items():
            assert dep in services, (name, dep)
            assert cond == {"condition": "service_healthy"}, (name, dep, cond)
    assert set(services["server"]["depends_on"]) == {"db"}
    assert set(services["grafana"]["depends_on"]) == {"db", "server"}
    assert "/api/v1/health" in " ".join(services["server"]["healthcheck"]["test"])
    assert "/api/health" in " ".join(services["grafana"]["healthcheck"]["test"])
    # the database is healthy only once it serves TCP (not the init-time socket-only server)
    assert "-h 127.0.0.1" in services["db"]["healthcheck"]["test"][1]


def test_images_are_pinned(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        image = svc["image"]
        repo, _, tag = image.rpartition(":")
        assert repo and tag and tag != "latest" and re.search(r"\d", tag), (name, image)
    assert re.fullmatch(r"timescale/timescaledb:2\.\d+\.\d+-pg1[5-7]",
                        compose["services"]["db"]["image"])
    assert re.fullmatch(r"grafana/grafana-oss:\d+\.\d+\.\d+",
                        compose["services"]["grafana"]["image"])
    build = compose["services"]["server"]["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).is_file()


def _strings(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    if isinstance(node, dict):
        return [s for v in node.values() for s in _strings(v)]
    return []


def test_required_variables_fail_with_a_message(raw: dict[str, Any]) -> None:
    text = "\n".join(_strings(raw))  # values only: Compose does not interpolate comments
    used = {m.group("name") or m.group("bare") for m in _VAR.finditer(text) if m.group(0) != "$$"}
    for name in REQUIRED:
        assert re.search(rf"\$\{{{name}:\?[^}}]+\}}", text), f"{name} must be ${{{name}:?msg}}"
        with pytest.raises(MissingVariable, match=name):
            resolve(raw, {k: v for k, v in FULL_ENV.items() if k != name})
    # any other variable has a default: nothing else can silently become empty
    for m in _VAR.finditer(text):
        name = m.group("name") or m.group("bare")
        if m.group(0) == "$$" or name in REQUIRED:
            continue
        assert m.group("op") == ":-", f"{m.group(0)} needs a default or :?"
    assert used >= REQUIRED
    # env.example lists every required variable
    example = (DEPLOY / "env.example").read_text()
    for name in REQUIRED:
        assert re.search(rf"^{name}=", example, re.M), name


def test_server_settings_are_real_settings(compose: dict[str, Any]) -> None:
    env = compose["services"]["server"]["environment"]
    fields = {ENV_PREFIX + f.upper() for f in Settings.model_fields}
    for key in env:
        assert key in fields, f"{key} is not a server setting (server/core/config.py)"
    settings = Settings.from_env({k: str(v) for k, v in env.items()})
    assert settings.database_url == (
        f"postgresql://spc:{FULL_ENV['SPC_DB_PASSWORD']}@db:5432/spc")
    assert settings.host == "0.0.0.0" and settings.port == 8000
    assert compose["services"]["server"]["ports"] == ["127.0.0.1:8000:8000"]
    assert compose["services"]["server"]["read_only"] is True


def test_grafana_gets_the_provisioning_and_every_variable_it_reads(
    compose: dict[str, Any],
) -> None:
    grafana = compose["services"]["grafana"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in grafana["volumes"]}
    prov = "../dashboards/grafana/provisioning"
    assert mounts["/etc/grafana/provisioning/datasources"] == f"{prov}/datasources"
    assert mounts["/etc/grafana/provisioning/dashboards"] == f"{prov}/dashboards"
    dashboards_provider = yaml.safe_load(
        (ROOT / "dashboards/grafana/provisioning/dashboards/spc.yaml").read_text())
    (provider,) = dashboards_provider["providers"]
    assert provider["type"] == "file"
    assert mounts[provider["options"]["path"]] == "../dashboards/grafana/dashboards"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (ROOT / "dashboards/grafana/dashboards" / Path(home).name).is_file()
    assert home.startswith(provider["options"]["path"] + "/")

    ds_text = (ROOT / "dashboards/grafana/provisioning/datasources/timescaledb.yaml").read_text()
    wanted = set(re.findall(r"\$\{(\w+)\}", ds_text))
    assert wanted and wanted <= set(grafana["environment"]), wanted - set(grafana["environment"])
    resolved = yaml.safe_load(interpolate(ds_text, {k: str(v) for k, v in
                                                    grafana["environment"].items()}))
    (ds,) = resolved["datasources"]
    assert ds["type"] == "grafana-postgresql-datasource" and ds["uid"] == "spc-timescaledb"
    assert ds["url"] == "db:5432" and ds["jsonData"]["database"] == "spc"
    assert ds["jsonData"]["timescaledb"] is True
    assert ds["user"] == "grafana_reader"
    assert ds["secureJsonData"]["password"] == FULL_ENV["GRAFANA_DB_PASSWORD"]
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == \
        FULL_ENV["GRAFANA_ADMIN_PASSWORD"]


def test_db_init_script_is_mounted_as_one_file(compose: dict[str, Any]) -> None:
    db = compose["services"]["db"]
    inits = [v for v in db["volumes"] if "/docker-entrypoint-initdb.d" in v]
    # mounting the directory would hide the image's own TimescaleDB init scripts
    assert inits == ["./db-init/10-spc-roles.sh:/docker-entrypoint-initdb.d/100-spc-roles.sh:ro"]
    env = db["environment"]
    assert env["POSTGRES_DB"] == "spc"
    assert {"SPC_DB_PASSWORD", "GRAFANA_DB_PASSWORD"} <= set(env)


def test_server_healthcheck_command_against_a_live_server(
    compose: dict[str, Any], live_server: LiveServer,
) -> None:
    kind, python, *args = compose["services"]["server"]["healthcheck"]["test"]
    assert kind == "CMD" and python == "python"

    def probe(port: int) -> int:
        argv = [sys.executable, *(a.replace("127.0.0.1:8000/", f"127.0.0.1:{port}/")
                                  for a in args)]
        return subprocess.run(argv, capture_output=True, timeout=30).returncode

    assert probe(live_server.port) == 0
    assert probe(free_port()) != 0  # nothing listens there
    # the image's HEALTHCHECK runs the same probe
    dockerfile = (DEPLOY / "server.Dockerfile").read_text()
    assert json.dumps(["python", *compose["services"]["server"]["healthcheck"]["test"][2:]]) \
        in dockerfile
