"""The input types a spec is written in: unit-typed scalars and budget blocks (pydantic).

Signal modules declare the spec keys they read with these types (see
:mod:`watchkeeper.signals.base`); :mod:`watchkeeper.spec` composes them into the spec
model. Each budget type knows how to ``resolve`` itself into the plain, fully resolved
dataclasses of :mod:`watchkeeper.model`, so no pydantic object travels past the loader.
"""

from __future__ import annotations

import re
from typing import Annotated, ClassVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)
from watchkeeper import model, units

# --- Unit-typed scalars ----------------------------------------------------------------------

# Each is a float after validation; WithJsonSchema documents what a user writes instead.
DURATION_PATTERN = r"^\d*\.?\d+(ns|us|µs|ms|s|m|h|d|w)$"
Duration = Annotated[float, BeforeValidator(units.parse_duration), WithJsonSchema(
    {"type": "string", "pattern": DURATION_PATTERN,
     "description": "A duration with its unit: ns, us, ms, s, m, h, d or w.",
     "examples": ["250us", "50ms", "1.5s", "2m"]})]
Wait = Annotated[float, BeforeValidator(units.parse_wait), WithJsonSchema(
    {"type": "string", "pattern": DURATION_PATTERN,
     "description": "A duration with its unit; 0s means at once.", "examples": ["0s", "5m"]})]
Ratio = Annotated[float, BeforeValidator(units.parse_ratio), WithJsonSchema(
    {"anyOf": [{"type": "string", "pattern": r"^\d*\.?\d+%$"},
               {"type": "number", "exclusiveMinimum": 0, "maximum": 1}],
     "description": "A percentage (80%) or a fraction up to 1 (0.8).",
     "examples": ["80%", "0.1%", 0.8]})]
Bytes = Annotated[float, BeforeValidator(units.parse_bytes), WithJsonSchema(
    {"type": "string", "pattern": r"^\d*\.?\d+(B|kB|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$",
     "description": "A size with its unit: MB is 10^6 bytes, MiB is 2^20.",
     "examples": ["512MiB", "2GB"]})]
Rate = Annotated[float, BeforeValidator(units.parse_rate), WithJsonSchema(
    {"type": "string", "pattern": r"^\d*\.?\d+/(s|min|h)$",
     "description": "Events per second, minute or hour.", "examples": ["50/s", "3000/min"]})]
Count = Annotated[float, BeforeValidator(units.parse_count), WithJsonSchema(
    {"type": "integer", "minimum": 1, "description": "A positive whole number."})]

_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


def check_label_name(name: str) -> str:
    if not _LABEL_NAME.match(name) or name.startswith("__"):
        raise ValueError(f"{name!r} is not a valid Prometheus label name")
    return name


def check_metric_name(name: str) -> str:
    if not _METRIC_NAME.match(name):
        raise ValueError(f"{name!r} is not a valid Prometheus metric name")
    return name


MetricName = Annotated[str, AfterValidator(check_metric_name)]
LabelName = Annotated[str, AfterValidator(check_label_name)]


class Strict(BaseModel):
    """Base for every input model: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# --- Thresholds ------------------------------------------------------------------------------

FOR_DESCRIPTION = ("How long the value must stay past the budget before the alert fires; "
                   "defaults to the service's `for`.")


class Thresholds(Strict):
    """A budget with up to two severities and an optional `for` of its own.

    Subclasses fix the unit of the values and whether lower values are worse.
    """

    lower_is_worse: ClassVar[bool] = False

    warning: float | None = Field(None, description="Value past which a ticket is opened.")
    critical: float | None = Field(None, description="Value past which someone is paged.")
    for_: Wait | None = Field(None, alias="for", description=FOR_DESCRIPTION)

    @model_validator(mode="after")
    def _severities_in_order(self) -> Thresholds:
        if self.warning is None and self.critical is None:
            raise ValueError("set at least one of 'warning' or 'critical'")
        if self.warning is not None and self.critical is not None:
            if self.lower_is_worse and not self.warning > self.critical:
                raise ValueError(
                    "lower is worse for this signal, so 'warning' must be above 'critical'"
                )
            if not self.lower_is_worse and not self.warning < self.critical:
                raise ValueError("'warning' must be below 'critical' (higher is worse here)")
        return self

    def resolve(self, default_for: float) -> model.Thresholds:
        return model.Thresholds(
            warning=self.warning, critical=self.critical,
            for_=self.for_ if self.for_ is not None else default_for,
            lower_is_worse=self.lower_is_worse)


class DurationThresholds(Thresholds):
    """Durations such as 200ms or 1.5s; higher is worse."""

    warning: Duration | None = Field(None, description="Ticket above this duration.")
    critical: Duration | None = Field(None, description="Page above this duration.")


class RatioThresholds(Thresholds):
    """Ratios such as 1% or 0.01; higher is worse."""

    warning: Ratio | None = Field(None, description="Ticket above this ratio.")
    critical: Ratio | None = Field(None, description="Page above this ratio.")

    @model_validator(mode="after")
    def _exceedable(self) -> RatioThresholds:
        if not self.lower_is_worse and 1.0 in (self.warning, self.critical):
            raise ValueError("a ratio cannot exceed 100%, so a budget of 100% never fires")
        return self


class LowRatioThresholds(RatioThresholds):
    """A ratio where lower is worse (cache hit ratio)."""

    lower_is_worse: ClassVar[bool] = True

    warning: Ratio | None = Field(None, description="Ticket below this ratio.")
    critical: Ratio | None = Field(None, description="Page below this ratio.")


class BytesThresholds(Thresholds):
    """Sizes with their unit (512MiB, 2GB); higher is worse."""

    warning: Bytes | None = Field(None, description="Ticket above this size.")
    critical: Bytes | None = Field(None, description="Page above this size.")


class RateThresholds(Thresholds):
    """Rates such as 1/s or 60/min; higher is worse."""

    warning: Rate | None = Field(None, description="Ticket above this rate.")
    critical: Rate | None = Field(None, description="Page above this rate.")


class LowRateThresholds(Thresholds):
    """Rates such as 50/s where lower is worse (a floor, e.g. request throughput)."""

    lower_is_worse: ClassVar[bool] = True

    warning: Rate | None = Field(None, description="Ticket below this rate.")
    critical: Rate | None = Field(None, description="Page below this rate.")


class Leak(Strict):
    """Predict the resource over `window` and alert when it will cross critical within `horizon`."""

    window: Duration = Field(description="How much history the linear prediction fits.")
    horizon: Duration = Field(description="How far ahead the prediction looks.")
    for_: Wait | None = Field(None, alias="for", description=FOR_DESCRIPTION)

    def resolve(self, default_for: float) -> model.Leak:
        return model.Leak(self.window, self.horizon,
                          self.for_ if self.for_ is not None else default_for)


class CountThresholds(Thresholds):
    """Whole counts (goroutines, threads); higher is worse; optionally a leak prediction."""

    warning: Count | None = Field(None, description="Ticket above this count.")
    critical: Count | None = Field(None, description="Page above this count.")
    leak: Leak | None = Field(None, description="Also alert on a steady climb towards "
                                                "`critical` (needs `critical`).")

    @model_validator(mode="after")
    def _leak_needs_critical(self) -> CountThresholds:
        if self.leak is not None and self.critical is None:
            raise ValueError("'leak' predicts when 'critical' is crossed, so set 'critical'")
        return self

    def resolve(self, default_for: float) -> model.CountThresholds:
        base = super().resolve(default_for)
        return model.CountThresholds(
            base.warning, base.critical, base.for_, base.lower_is_worse,
            leak=self.leak.resolve(default_for) if self.leak else None)


# --- Quantile budgets ------------------------------------------------------------------------

QUANTILES: dict[str, float] = {
    "p50": 0.5, "p75": 0.75, "p90": 0.9, "p95": 0.95, "p99": 0.99, "p999": 0.999,
}


def _quantile_field(name: str):
    return Field(None, description=f"Budget of the {QUANTILES[name]:g} quantile ({name}).")


class LatencyBudgets(Strict):
    """Budgets per quantile of a latency histogram; declare any of p50…p999."""

    p50: DurationThresholds | None = _quantile_field("p50")
    p75: DurationThresholds | None = _quantile_field("p75")
    p90: DurationThresholds | None = _quantile_field("p90")
    p95: DurationThresholds | None = _quantile_field("p95")
    p99: DurationThresholds | None = _quantile_field("p99")
    p999: DurationThresholds | None = _quantile_field("p999")

    def resolve(self, default_for: float) -> model.Quantiles:
        """The declared quantiles in ascending order."""
        return tuple(model.Quantile(name, q, budget.resolve(default_for))
                     for name, q in QUANTILES.items()
                     if (budget := getattr(self, name)) is not None)


def resolve_value(value: object, default_for: float) -> object:
    """Resolve an input value: budget types resolve themselves, lists item by item."""
    if isinstance(value, list | tuple):
        return tuple(resolve_value(item, default_for) for item in value)
    resolve = getattr(value, "resolve", None)
    return resolve(default_for) if resolve is not None else value
