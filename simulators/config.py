"""The line YAML, declared once as pydantic models.

A line file names the line, its machines (each one Modbus unit and one OPC UA folder), each
machine's process variables and attribute streams, and an optional script of disturbances.
Loading errors name the file, the field and the fix, because this file is usually hand-edited by
an integrator rehearsing an install.
"""

from __future__ import annotations

import math
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Self

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

# Modbus layout keeps each encoding in a 100-register block, and float64 takes 4 registers, so a
# machine carries at most 25 process variables (see modbus_map.py).
MAX_VARIABLES_PER_MACHINE = 25
MAX_ATTRIBUTE_STREAMS_PER_MACHINE = 25
NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_\-]*$"
PART_TAG_NAMES = frozenset({"part_id", "part_count", "part_complete"})


class ConfigError(ValueError):
    """A line file that cannot be used; the message names the file, the field and the fix."""


class DisturbanceKind(StrEnum):
    SHIFT = "shift"  # mean shift of `magnitude` sigma
    TREND = "trend"  # linear drift of `magnitude` sigma per sample
    VARIANCE = "variance"  # sigma multiplied by `magnitude`
    CYCLE = "cycle"  # sine of amplitude `magnitude` sigma and `period` samples
    STRATIFICATION = "stratification"  # variance collapse: sigma multiplied by `magnitude` (< 1)
    MIXTURE = "mixture"  # alternates between mean +/- `magnitude` sigma
    OUTLIERS = "outliers"  # spikes of `magnitude` sigma with probability `probability`
    STUCK = "stuck"  # sensor frozen at its last value
    DROPOUT = "dropout"  # sensor gives no value: bad quality
    DISCONNECT = "disconnect"  # the whole device stops answering on both protocols


# Default magnitude per kind, used when a disturbance does not give one.
DEFAULT_MAGNITUDE: dict[DisturbanceKind, float] = {
    DisturbanceKind.SHIFT: 3.0,
    DisturbanceKind.TREND: 0.1,
    DisturbanceKind.VARIANCE: 2.0,
    DisturbanceKind.CYCLE: 2.0,
    DisturbanceKind.STRATIFICATION: 0.2,
    DisturbanceKind.MIXTURE: 2.5,
    DisturbanceKind.OUTLIERS: 6.0,
    DisturbanceKind.STUCK: 0.0,
    DisturbanceKind.DROPOUT: 0.0,
    DisturbanceKind.DISCONNECT: 0.0,
}

# Kinds that act on the device rather than on one variable.
DEVICE_KINDS = frozenset({DisturbanceKind.DISCONNECT})
# Kinds an attribute stream (counts per lot) understands: a shift of the expected count.
ATTRIBUTE_KINDS = frozenset({DisturbanceKind.SHIFT})

_STRICT = ConfigDict(extra="forbid", frozen=True)


class DisturbanceSpec(BaseModel):
    """One disturbance: what it does, to which variable, when it starts and for how long.

    Start and duration are counted either in samples of the disturbed variable or in seconds of
    process time (the virtual clock's time when one is used). No start means "now".
    """

    model_config = _STRICT

    kind: DisturbanceKind
    machine: str | None = None
    variable: str | None = None
    magnitude: float | None = None
    period: Annotated[float, Field(gt=0)] = 8.0
    probability: Annotated[float, Field(ge=0, le=1)] = 0.05
    after_samples: Annotated[int, Field(ge=0)] | None = None
    after_seconds: Annotated[float, Field(ge=0)] | None = None
    for_samples: Annotated[int, Field(gt=0)] | None = None
    for_seconds: Annotated[float, Field(gt=0)] | None = None

    @model_validator(mode="after")
    def _one_start_one_duration(self) -> Self:
        if self.after_samples is not None and self.after_seconds is not None:
            raise ValueError("give either after_samples or after_seconds, not both")
        if self.for_samples is not None and self.for_seconds is not None:
            raise ValueError("give either for_samples or for_seconds, not both")
        if self.kind not in DEVICE_KINDS and self.variable is None:
            raise ValueError(f"a {self.kind.value!r} disturbance needs 'variable'")
        if self.magnitude is not None and not math.isfinite(self.magnitude):
            raise ValueError("magnitude must be a finite number")
        return self

    @property
    def effective_magnitude(self) -> float:
        return DEFAULT_MAGNITUDE[self.kind] if self.magnitude is None else self.magnitude


class VariableConfig(BaseModel):
    """A continuous process variable: a normal process around `mean` with sd `sigma`."""

    model_config = _STRICT

    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    unit: str = ""
    mean: float
    sigma: Annotated[float, Field(gt=0)]
    eu_range: tuple[float, float] | None = None
    rate_hz: Annotated[float, Field(gt=0, le=1000)] | None = None
    int16_scale: Annotated[float, Field(gt=0)] | None = None
    description: str = ""

    @model_validator(mode="after")
    def _range_ordered(self) -> Self:
        if self.eu_range is not None and not self.eu_range[0] < self.eu_range[1]:
            raise ValueError("eu_range must be [low, high] with low < high")
        return self

    @property
    def range(self) -> tuple[float, float]:
        """Engineering range: as configured, else mean +/- 10 sigma."""
        if self.eu_range is not None:
            return self.eu_range
        return (self.mean - 10 * self.sigma, self.mean + 10 * self.sigma)

    @property
    def scale(self) -> float:
        """int16 scale factor: as configured, else the largest power of ten that fits the range."""
        if self.int16_scale is not None:
            return self.int16_scale
        peak = max(abs(self.range[0]), abs(self.range[1]), 1e-12)
        exponent = math.floor(math.log10(32767 / peak))
        return float(10 ** max(min(exponent, 6), -6))


class AttributeKind(StrEnum):
    DEFECTIVES = "defectives"  # defective units in a lot of `lot_size` (p / np charts)
    DEFECTS = "defects"  # defects counted on `units_inspected` units (c / u charts)


class AttributeStreamConfig(BaseModel):
    """A count per inspected lot: binomial defectives or Poisson defects."""

    model_config = _STRICT

    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    kind: AttributeKind
    lot_size: Annotated[int, Field(gt=0)] | None = None
    units_inspected: Annotated[int, Field(gt=0)] | None = None
    p: Annotated[float, Field(ge=0, le=1)] | None = None
    defects_per_unit: Annotated[float, Field(ge=0)] | None = None
    rate_hz: Annotated[float, Field(gt=0, le=1000)] | None = None

    @model_validator(mode="after")
    def _kind_fields(self) -> Self:
        if self.kind is AttributeKind.DEFECTIVES:
            if self.lot_size is None or self.p is None:
                raise ValueError("a 'defectives' stream needs lot_size and p")
        elif self.units_inspected is None or self.defects_per_unit is None:
            raise ValueError("a 'defects' stream needs units_inspected and defects_per_unit")
        return self


class PartModeConfig(BaseModel):
    """Part-based sampling: one measurement of every variable per produced part."""

    model_config = _STRICT

    cycle_seconds: Annotated[float, Field(gt=0)]
    part_id_prefix: str = "P"


class MachineConfig(BaseModel):
    model_config = _STRICT

    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    unit_id: Annotated[int, Field(ge=1, le=247)] | None = None
    variables: Annotated[list[VariableConfig], Field(min_length=1)]
    attributes: list[AttributeStreamConfig] = []
    part_mode: PartModeConfig | None = None

    @model_validator(mode="after")
    def _unique_names(self) -> Self:
        if len(self.attributes) > MAX_ATTRIBUTE_STREAMS_PER_MACHINE:
            raise ValueError(
                f"at most {MAX_ATTRIBUTE_STREAMS_PER_MACHINE} attribute streams per machine; "
                f"split the machine in two"
            )
        if len(self.variables) > MAX_VARIABLES_PER_MACHINE:
            raise ValueError(
                f"at most {MAX_VARIABLES_PER_MACHINE} variables per machine "
                f"(the Modbus map has room for that many); split the machine in two"
            )
        names = [v.name for v in self.variables] + [a.name for a in self.attributes]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"variable/attribute names must be unique, repeated: {duplicates}")
        reserved = sorted(set(names) & PART_TAG_NAMES) if self.part_mode else []
        if reserved:
            raise ValueError(
                f"{reserved} name part-mode tags of this machine; rename the variable/attribute"
            )
        return self


class LineConfig(BaseModel):
    model_config = _STRICT

    line: Annotated[str, Field(pattern=NAME_PATTERN)]
    sample_rate_hz: Annotated[float, Field(gt=0, le=1000)] = 2.0
    machines: Annotated[list[MachineConfig], Field(min_length=1)]
    disturbances: list[DisturbanceSpec] = []

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        names = [m.name for m in self.machines]
        if len(set(names)) != len(names):
            raise ValueError(f"machine names must be unique, got {names}")
        units = [m.unit_id or i + 1 for i, m in enumerate(self.machines)]
        if len(set(units)) != len(units):
            raise ValueError(f"Modbus unit ids must be unique, got {units}")
        for i, d in enumerate(self.disturbances):
            problem = disturbance_target_problem(self, d)
            if problem:
                raise ValueError(f"disturbances[{i}]: {problem}")
        return self

    def machine(self, name: str) -> MachineConfig:
        for m in self.machines:
            if m.name == name:
                return m
        raise KeyError(name)

    def unit_id(self, machine: MachineConfig) -> int:
        return machine.unit_id or self.machines.index(machine) + 1


def disturbance_target_problem(line: LineConfig, spec: DisturbanceSpec) -> str | None:
    """Why `spec` does not fit `line` (unknown machine or variable), or None when it does."""
    if spec.kind in DEVICE_KINDS:
        if spec.machine is not None and spec.machine not in {m.name for m in line.machines}:
            return f"unknown machine {spec.machine!r}"
        return None
    machines = line.machines if spec.machine is None else [
        m for m in line.machines if m.name == spec.machine
    ]
    if not machines:
        known = [m.name for m in line.machines]
        return f"unknown machine {spec.machine!r}; the line has {known}"
    if spec.machine is None and len(line.machines) > 1:
        return "the line has several machines: give 'machine'"
    variables = [v.name for v in machines[0].variables]
    attributes = [a.name for a in machines[0].attributes]
    if spec.variable in attributes:
        if spec.kind not in ATTRIBUTE_KINDS:
            return (
                f"attribute stream {spec.variable!r} supports only "
                f"{sorted(k.value for k in ATTRIBUTE_KINDS)} disturbances, not {spec.kind.value!r}"
            )
        return None
    if spec.variable not in variables:
        return (
            f"unknown variable {spec.variable!r} on machine {machines[0].name!r}; "
            f"it has {variables + attributes}"
        )
    return None


def _format_errors(source: str, exc: ValidationError) -> str:
    lines = [f"{source}: invalid line configuration:"]
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown field; remove it or check its spelling"
        elif err["type"] == "missing":
            message = "required field is missing; add it"
        lines.append(f"  {where}: {message}")
    return "\n".join(lines)


def parse_line_config(data: object, source: str = "<config>") -> LineConfig:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the file must be a YAML mapping with 'line' and 'machines'")
    try:
        return LineConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(source, exc)) from None


def load_line_config(path: str | Path) -> LineConfig:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the line configuration: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    return parse_line_config(data, str(path))


def load_scenario(path: str | Path, line: LineConfig) -> list[DisturbanceSpec]:
    """A scenario file: a YAML mapping with a `disturbances` list, checked against the line."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the scenario: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("disturbances"), list):
        raise ConfigError(f"{path}: a scenario must be a mapping with a 'disturbances' list")
    extra = set(data) - {"disturbances", "description"}
    if extra:
        raise ConfigError(f"{path}: unknown top-level field(s) {sorted(extra)}; remove them")
    specs: list[DisturbanceSpec] = []
    for i, item in enumerate(data["disturbances"]):
        try:
            spec = DisturbanceSpec.model_validate(item)
        except ValidationError as exc:
            raise ConfigError(_format_errors(f"{path}: disturbances[{i}]", exc)) from None
        problem = disturbance_target_problem(line, spec)
        if problem:
            raise ConfigError(f"{path}: disturbances[{i}]: {problem}")
        specs.append(spec)
    return specs

