"""API models, one naming family per resource: ThingCreate / ThingUpdate / ThingPublic."""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic import Strict as PydanticStrict

Key = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")
_NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")


def _iso_only(value: object) -> object:
    # pydantic would read a bare number as Unix seconds; a timestamp here is ISO 8601 only.
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        raise ValueError("must be an ISO 8601 date-time such as 2026-01-05T08:00:00Z")
    return value


Timestamp = Annotated[datetime, BeforeValidator(_iso_only)]
# Numbers that must arrive as JSON numbers: no "1.5" strings, no true/false.
StrictNumber = Annotated[float, PydanticStrict()]
StrictCount = Annotated[int, PydanticStrict(), Field(ge=0)]
ChartType = Literal["imr", "xbar-r", "xbar-s", "p", "np", "c", "u", "ewma", "cusum"]
Quality = Literal["good", "uncertain", "bad"]
QUALITY_CODES: dict[str, int] = {"good": 0, "uncertain": 1, "bad": 2}
QUALITY_NAMES: dict[int, str] = {v: k for k, v in QUALITY_CODES.items()}


class Strict(BaseModel):
    """Request bodies: unknown fields refused, and no NUL characters (PostgreSQL text cannot
    hold them, and no legitimate name, key or note contains one)."""

    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: object) -> object:
        def check(node: object, path: str) -> None:
            if isinstance(node, str) and "\x00" in node:
                raise ValueError(f"{path or 'body'} contains a NUL character")
            if isinstance(node, dict):
                for k, v in node.items():
                    check(v, f"{path}.{k}" if path else str(k))
            elif isinstance(node, list):
                for i, v in enumerate(node):
                    check(v, f"{path}[{i}]")

        check(data, "")
        return data


# --- characteristics -------------------------------------------------------------------------

class ChartOptionsModel(Strict):
    """Chart settings that are not estimated (spc_core.phases.ChartOptions)."""

    sigma_method: Literal["mr", "mr_median", "rbar", "sbar", "pooled", "sd"] | None = None
    mr_span: int = Field(2, ge=2, le=100)
    laney: bool = Field(False, description="Laney p'/u' for over-dispersed attributes data")
    lam: StrictNumber = Field(0.2, gt=0, le=1, description="EWMA weight")
    L: StrictNumber = Field(3.0, gt=0, le=10, description="EWMA limit width in sigma")
    k: StrictNumber = Field(0.5, ge=0, le=10, description="CUSUM reference value in sigma")
    h: StrictNumber = Field(5.0, gt=0, le=50, description="CUSUM decision interval in sigma")
    fir: StrictNumber = Field(0.0, ge=0, le=50, description="CUSUM head start in sigma")


class CharacteristicCreate(Strict):
    key: str = Key
    name: str = Field(min_length=1, max_length=200)
    unit: str = Field("", max_length=32)
    chart_type: ChartType = "imr"
    subgroup_size: int = Field(1, ge=1, le=100, description="samples per subgroup (Xbar charts)")
    subgrouping: Literal["consecutive", "part", "time"] = Field(
        "consecutive", description="Xbar charts: every subgroup_size samples, one subgroup per "
        "part_id, or one per time window of subgroup_window_s seconds")
    subgroup_window_s: StrictNumber | None = Field(None, gt=0, le=86_400 * 31)
    sample_size: StrictNumber | None = Field(
        None, gt=0, description="p/np/u charts: units inspected per sample when a sample does "
        "not say (fixed lot size)")
    options: ChartOptionsModel = Field(default_factory=ChartOptionsModel)
    lsl: StrictNumber | None = None
    usl: StrictNumber | None = None
    target: StrictNumber | None = None
    rules: Literal["we", "nelson"] = "we"
    baseline_points: int = Field(30, ge=0, le=100_000)
    station: str | None = Field(None, max_length=128)

    @field_validator("lsl", "usl", "target")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and not math.isfinite(v):
            raise ValueError("must be a finite number")
        return v

    @model_validator(mode="after")
    def _subgroups_fit_the_chart(self) -> CharacteristicCreate:
        xbar = self.chart_type in ("xbar-r", "xbar-s")
        if xbar and self.subgroup_size < 2:
            raise ValueError(f"a {self.chart_type} chart needs subgroup_size >= 2")
        if not xbar and self.subgroup_size != 1:
            raise ValueError(
                f"subgroup_size applies to xbar-r/xbar-s charts, not {self.chart_type}"
            )
        if self.subgrouping == "time" and self.subgroup_window_s is None:
            raise ValueError("subgrouping 'time' needs subgroup_window_s (seconds)")
        if self.sample_size is not None and self.chart_type not in ("p", "np", "u"):
            raise ValueError(f"sample_size applies to p, np and u charts, not {self.chart_type}")
        if self.subgrouping != "consecutive" and not xbar:
            raise ValueError(f"subgrouping applies to xbar-r/xbar-s charts, not {self.chart_type}")
        return self


class CharacteristicUpdate(Strict):
    """Fields to change; lsl, usl and target may be set to null (removed), the others not."""

    name: str | None = Field(None, min_length=1, max_length=200)
    unit: str | None = Field(None, max_length=32)
    lsl: StrictNumber | None = None
    usl: StrictNumber | None = None
    target: StrictNumber | None = None
    rules: Literal["we", "nelson"] | None = None
    baseline_points: int | None = Field(None, ge=0, le=100_000)

    @model_validator(mode="before")
    @classmethod
    def _no_null_for_required_columns(cls, data: object) -> object:
        if isinstance(data, dict):
            for name in ("name", "unit", "rules", "baseline_points"):
                if name in data and data[name] is None:
                    raise ValueError(f"{name} cannot be null (leave it out to keep it)")
        return data


class CharacteristicPublic(BaseModel):
    key: str
    name: str
    unit: str
    chart_type: str
    subgroup_size: int = 1
    subgrouping: str = "consecutive"
    subgroup_window_s: StrictNumber | None = None
    sample_size: StrictNumber | None = None
    options: dict = {}
    lsl: float | None
    usl: float | None
    target: float | None
    rules: str
    baseline_points: int
    station: str | None = None
    limits: LimitsPublic | None = None


# --- control limits ----------------------------------------------------------------------------

class LimitsCreate(Strict):
    """Variables charts: center = process mean, sigma = process sigma. Attributes charts:
    center = p-bar, c-bar or u-bar, sigma = Laney's sigma_z (1 for the classic chart)."""

    center: StrictNumber
    sigma: StrictNumber = Field(1.0, gt=0)
    effective_from: Timestamp | None = None
    reason: str = Field(min_length=3, max_length=2000)


class LimitsPublic(BaseModel):
    version: int
    center: float
    sigma: float
    ucl: float | None = Field(description="nominal; per-point limits are in the chart data")
    lcl: float | None
    mr_center: float | None
    mr_ucl: float | None
    effective_from: datetime
    created_at: datetime
    created_by: str
    reason: str


# --- ingest ------------------------------------------------------------------------------------
# The hot path: thousands of samples per request are validated by pydantic's core alone (no
# Python validator per sample): NUL-free text by pattern, timestamps strictly as RFC 3339
# strings (strict JSON mode refuses numbers), numbers strictly as JSON numbers.

class SampleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    characteristic: str = Field(min_length=1, max_length=128, pattern=r"^[^\x00]+$")
    ts: Annotated[datetime, PydanticStrict()]
    value: StrictNumber | None = None
    quality: Quality = "good"
    part_id: str | None = Field(None, max_length=128, pattern=r"^[^\x00]*$")
    size: StrictNumber | None = Field(
        None, gt=0, description="units inspected (p, np and u charts)")


class IngestRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent: str | None = Field(None, max_length=128, pattern=r"^[^\x00]*$")
    samples: list[SampleIn]


class IngestResult(BaseModel):
    accepted: int
    duplicates: int
    replayed: bool = False


class HeartbeatSource(BaseModel):
    name: str = Field(max_length=128)
    state: str = Field(max_length=32)
    last_error: str | None = Field(None, max_length=2000)


class HeartbeatCreate(BaseModel):
    agent: str = Field(min_length=1, max_length=128)
    version: str | None = Field(None, max_length=64)
    buffer_depth: StrictCount = 0
    dropped: StrictCount = 0
    sources: list[HeartbeatSource] = []


# --- chart data --------------------------------------------------------------------------------

class CompanionPoint(BaseModel):
    """The dispersion chart's point (MR, R or S) beside an I or Xbar point."""

    statistic: float | None
    center: float | None
    ucl: float | None
    lcl: float | None


class ChartPoint(BaseModel):
    ts: datetime
    statistic: float | None = Field(description="the plotted statistic")
    center: float | None
    ucl: float | None
    lcl: float | None
    sigma: float | None = Field(description="sigma of the plotted statistic: zone width")
    companion: CompanionPoint | None = None
    quality: Quality = "good"
    limits_version: int | None
    violations: list[str]


class ChartPublic(BaseModel):
    characteristic: CharacteristicPublic
    points: list[ChartPoint]
    limits: list[LimitsPublic]
    downsampled: bool = False


# --- alarms ------------------------------------------------------------------------------------

class AlarmPublic(BaseModel):
    id: int
    kind: str = "spc"
    characteristic: str | None
    subject: str | None = None
    detail: str | None = None
    rule: str
    first_ts: datetime
    last_ts: datetime
    point_count: int
    limits_version: int | None
    severity: str
    state: str
    acknowledged_by: str | None = None
    acknowledged_at: datetime | None = None
    cause: str | None = None
    corrective_action: str | None = None
    closed_by: str | None = None
    closed_at: datetime | None = None


class AlarmAcknowledge(Strict):
    cause: str = Field(min_length=1, max_length=64, description="an alarm_causes key")
    corrective_action: str = Field("", max_length=4000)


class AlarmClose(Strict):
    note: str = Field("", max_length=4000)


class CausePublic(BaseModel):
    key: str
    label: str
    category: str
    active: bool = True


class CauseCreate(Strict):
    key: str = Key
    label: str = Field(min_length=1, max_length=200)
    category: Literal["man", "machine", "method", "material", "measurement", "environment",
                      "other"] = "other"


class ParetoBar(BaseModel):
    cause: str
    label: str
    count: int
    cumulative_percent: float


class NodeCreate(Strict):
    """A site."""

    key: str = Key
    name: str = Field(min_length=1, max_length=200)


class ChildNodeCreate(NodeCreate):
    """A line (parent: a site's key) or a station (parent: a line's key)."""

    parent: str = Field(min_length=1, max_length=128)


class AuditEntry(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    subject: str
    details: dict


# --- webhooks ----------------------------------------------------------------------------------

class WebhookCreate(Strict):
    url: str = Field(max_length=2000, pattern=r"^https?://[^/\s?#]+")
    secret: str | None = Field(None, min_length=24, max_length=200)
    events: list[Literal["alarm.opened", "alarm.acknowledged", "alarm.closed"]] = ["alarm.opened"]


class WebhookPublic(BaseModel):
    id: int
    url: str
    events: list[str]
    enabled: bool
    secret: str | None = None  # returned once, at creation


class DeliveryPublic(BaseModel):
    id: int
    event_id: str
    subscription_id: int
    event_type: str
    state: str
    attempts: int
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


# --- keys --------------------------------------------------------------------------------------

class ApiKeyCreate(Strict):
    role: Literal["agent", "operator", "engineer", "admin"]
    name: str = Field("", max_length=200)
    scope: str | None = Field(None, max_length=128)


class ApiKeyPublic(BaseModel):
    id: int
    prefix: str
    role: str
    name: str
    scope: str | None
    created_at: datetime
    key: str | None = None  # the plain key, returned once at creation


CharacteristicPublic.model_rebuild()
