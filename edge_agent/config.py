"""The agent's configuration: one YAML file, declared once as pydantic models.

`load_config(path)` substitutes `${VAR}` (and `${VAR:-default}`) from the environment, validates,
and on any problem raises `ConfigError` whose message names the file, the path of the field
(`sources[2].tags[5].address`) and what is expected. Secrets are `SecretStr`: they print as
`**********` and never reach a log line.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Annotated, Any, Union

import yaml
from pydantic import BaseModel, Field, HttpUrl, SecretStr, ValidationError, model_validator

from edge_agent.sources import SOURCE_KINDS
from edge_agent.sources.base import StrictModel


class ConfigError(Exception):
    """The configuration file cannot be used; the message says where and why."""


class AgentSection(StrictModel):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$",
                      description="this agent's name on the server")


class ServerSection(StrictModel):
    url: HttpUrl = Field(description="base URL of the SPC server, e.g. https://spc.plant:8000")
    api_key: SecretStr | None = Field(None, description="agent API key, sent as a bearer token")
    ca_file: Path | None = Field(None, description="PEM bundle of a private CA to trust")
    timeout_s: float = Field(10.0, gt=0)


class BufferSection(StrictModel):
    path: Path = Field(description="SQLite file holding samples until the server has them")
    max_samples: int = Field(1_000_000, ge=1, description="bound; when full the oldest "
                             "samples are dropped and counted")
    synchronous: str = Field("full", pattern="^(full|normal)$",
                             description="full: a committed sample survives power loss")


class UploadSection(StrictModel):
    batch_size: int = Field(500, ge=1, le=50_000)
    interval_s: float = Field(1.0, gt=0, description="send a partial batch at least this often")
    gzip: bool = True
    backoff_initial_s: float = Field(0.5, gt=0)
    backoff_max_s: float = Field(60.0, gt=0)


class HeartbeatSection(StrictModel):
    interval_s: float = Field(30.0, gt=0)


def _source_union() -> Any:
    models = [cls.config_model for cls in SOURCE_KINDS.values()]
    return Annotated[Union[tuple(models)], Field(discriminator="kind")]  # noqa: UP007


SourceConfigAny = _source_union()


class AgentConfig(StrictModel):
    agent: AgentSection
    server: ServerSection
    buffer: BufferSection
    upload: UploadSection = Field(default_factory=UploadSection)
    heartbeat: HeartbeatSection = Field(default_factory=HeartbeatSection)
    sources: list[SourceConfigAny] = Field(min_length=1)  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _cross_checks(self) -> AgentConfig:
        names = [s.name for s in self.sources]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"source names must be unique; repeated: {', '.join(dupes)}")
        if self.buffer.max_samples < self.upload.batch_size:
            raise ValueError("buffer.max_samples must be at least upload.batch_size")
        return self


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def substitute_env(node: Any, env: dict[str, str], path: str = "") -> Any:
    """Replace `${VAR}` in every string of the YAML tree; a missing variable is an error."""
    if isinstance(node, dict):
        return {k: substitute_env(v, env, _join(path, k)) for k, v in node.items()}
    if isinstance(node, list):
        return [substitute_env(v, env, f"{path}[{i}]") for i, v in enumerate(node)]
    if not isinstance(node, str):
        return node

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise ConfigError(f"{path}: environment variable {name} is not set; export it "
                          f"(e.g. in the service's EnvironmentFile) or write ${{{name}:-default}}")

    return _VAR.sub(replace, node)


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _field_path(loc: tuple[Any, ...]) -> str:
    """('sources', 2, 'modbus', 'tags', 5, 'address') -> 'sources[2].tags[5].address'."""
    out = ""
    skip_kind = False
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            skip_kind = True
            continue
        if skip_kind and part in SOURCE_KINDS:  # pydantic adds the union member's tag
            skip_kind = False
            continue
        skip_kind = False
        out = _join(out, part)
    return out or "(top level)"


def _all_field_names(model: type[BaseModel], seen: set[type] | None = None) -> set[str]:
    seen = seen if seen is not None else set()
    if model in seen:
        return set()
    seen.add(model)
    names = set(model.model_fields)
    for field in model.model_fields.values():
        for arg in _nested_models(field.annotation):
            names |= _all_field_names(arg, seen)
    return names


def _nested_models(annotation: Any) -> list[type[BaseModel]]:
    found = []
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        found.append(annotation)
    for arg in getattr(annotation, "__args__", ()) or ():
        found += _nested_models(arg)
    for arg in getattr(annotation, "__metadata__", ()) or ():
        found += _nested_models(arg)
    return found


def _describe_error(err: Any) -> str:
    kind, msg = err["type"], err["msg"]
    if kind == "extra_forbidden":
        key = err["loc"][-1]
        known = set(_all_field_names(AgentConfig))
        for cls in SOURCE_KINDS.values():
            known |= _all_field_names(cls.config_model)
        close = difflib.get_close_matches(str(key), sorted(known), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else "; remove it"
        return f"unknown key {key!r}{hint}"
    if kind == "missing":
        return "required field is missing"
    if kind == "union_tag_invalid":
        return (f"unknown source kind {err['input'].get('kind')!r}; expected one of: "
                f"{', '.join(sorted(SOURCE_KINDS))}")
    if kind == "union_tag_not_found":
        return f"each source needs kind: one of {', '.join(sorted(SOURCE_KINDS))}"
    got = err.get("input")
    if kind != "value_error" and got is not None and not isinstance(got, dict | list):
        return f"{msg} (got {got!r})"
    return msg.removeprefix("Value error, ")


def format_validation_error(path: Path | str, exc: ValidationError) -> str:
    lines = [f"{path}: invalid configuration ({exc.error_count()} problem"
             f"{'s' if exc.error_count() != 1 else ''}):"]
    for err in exc.errors(include_url=False):
        lines.append(f"  {_field_path(err['loc'])}: {_describe_error(err)}")
    return "\n".join(lines)


def parse_config(data: Any, source: Path | str = "<config>",
                 env: dict[str, str] | None = None) -> AgentConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping with agent, server, buffer and sources; "
                          f"got {type(data).__name__}")
    try:
        data = substitute_env(data, dict(os.environ) if env is None else env)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    try:
        return AgentConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(source, exc)) from None


def load_config(path: Path | str, env: dict[str, str] | None = None) -> AgentConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}:{where}: not valid YAML: {problem}") from None
    return parse_config(data, path, env)
