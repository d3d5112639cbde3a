"""The spec model (version 1): validated, typed, with defaults resolved.

Two layers: the *input* models mirror the YAML exactly (every key optional where the
contract says so, unknown keys forbidden) and are what pydantic validates; ``resolve()``
then turns them into :class:`Service` objects whose every value is concrete (defaults
merged, metric names chosen by language), which is all the builders ever see.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from typing import Annotated, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from watchkeeper import units
from watchkeeper.slo_spec import (
    PrometheusSpec,
    SloSpec,
    check_against_prometheus,
    latency_problem,
)

SPEC_VERSION = 1

# --- Unit-typed scalars ----------------------------------------------------------------------

# Each is a float after validation; WithJsonSchema documents what a user writes instead.
Duration = Annotated[float, BeforeValidator(units.parse_duration), WithJsonSchema(
    {"type": "string", "pattern": r"^\d*\.?\d+(ns|us|µs|ms|s|m|h|d|w)$",
     "examples": ["250us", "50ms", "1.5s", "2m"]})]
Wait = Annotated[float, BeforeValidator(units.parse_wait), WithJsonSchema(
    {"type": "string", "pattern": r"^\d*\.?\d+(ns|us|µs|ms|s|m|h|d|w)$",
     "examples": ["0s", "5m"]})]
Ratio = Annotated[float, BeforeValidator(units.parse_ratio), WithJsonSchema(
    {"anyOf": [{"type": "string", "pattern": r"^\d*\.?\d+%$"},
               {"type": "number", "exclusiveMinimum": 0, "maximum": 1}],
     "examples": ["80%", "0.1%", 0.8]})]
Bytes = Annotated[float, BeforeValidator(units.parse_bytes), WithJsonSchema(
    {"anyOf": [{"type": "string", "pattern": r"^\d*\.?\d+(B|kB|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$"},
               {"type": "integer", "minimum": 1}],
     "examples": ["512MiB", "2GB"]})]
Count = Annotated[float, BeforeValidator(units.parse_count), WithJsonSchema(
    {"type": "integer", "minimum": 1})]

_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


RESERVED_LABELS = ("service", "signal", "severity")


def _check_label_names(labels: dict[str, str]) -> dict[str, str]:
    for name in labels:
        if not _LABEL_NAME.match(name) or name.startswith("__"):
            raise ValueError(f"{name!r} is not a valid Prometheus label name")
    return labels


def _check_alert_labels(labels: dict[str, str]) -> dict[str, str]:
    _check_label_names(labels)
    if taken := [name for name in labels if name in RESERVED_LABELS]:
        raise ValueError(f"label {taken[0]!r} is set by watchkeeper on every alert; "
                         "choose another name")
    return labels


def _check_metric_name(name: str) -> str:
    if not _METRIC_NAME.match(name):
        raise ValueError(f"{name!r} is not a valid Prometheus metric name")
    return name


Labels = Annotated[dict[str, str], AfterValidator(_check_label_names)]
AlertLabels = Annotated[dict[str, str], AfterValidator(_check_alert_labels)]
MetricName = Annotated[str, AfterValidator(_check_metric_name)]
LabelName = Annotated[str, AfterValidator(lambda n: next(iter(_check_label_names({n: ""}))))]


class _Strict(BaseModel):
    """Base for every input model: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# --- Thresholds ------------------------------------------------------------------------------


class _Thresholds(_Strict):
    """A budget with up to two severities and an optional `for` of its own.

    Subclasses fix the unit of the values and whether lower values are worse.
    """

    lower_is_worse: ClassVar[bool] = False

    warning: float | None = None
    critical: float | None = None
    for_: Wait | None = Field(None, alias="for")

    @model_validator(mode="after")
    def _severities_in_order(self) -> _Thresholds:
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


class DurationThresholds(_Thresholds):
    warning: Duration | None = None
    critical: Duration | None = None


class RatioThresholds(_Thresholds):
    warning: Ratio | None = None
    critical: Ratio | None = None

    @model_validator(mode="after")
    def _exceedable(self) -> RatioThresholds:
        if not self.lower_is_worse and 1.0 in (self.warning, self.critical):
            raise ValueError("a ratio cannot exceed 100%, so a budget of 100% never fires")
        return self


class LowRatioThresholds(RatioThresholds):
    """A ratio where lower is worse (cache hit ratio)."""

    lower_is_worse: ClassVar[bool] = True


class BytesThresholds(_Thresholds):
    warning: Bytes | None = None
    critical: Bytes | None = None


class Leak(_Strict):
    """Predict the resource over `window` and alert when it will cross critical within `horizon`."""

    window: Duration
    horizon: Duration
    for_: Wait | None = Field(None, alias="for")


class CountThresholds(_Thresholds):
    warning: Count | None = None
    critical: Count | None = None
    leak: Leak | None = None

    @model_validator(mode="after")
    def _leak_needs_critical(self) -> CountThresholds:
        if self.leak is not None and self.critical is None:
            raise ValueError("'leak' predicts when 'critical' is crossed, so set 'critical'")
        return self


# --- Sections --------------------------------------------------------------------------------

QUANTILES: dict[str, float] = {
    "p50": 0.5, "p75": 0.75, "p90": 0.9, "p95": 0.95, "p99": 0.99, "p999": 0.999,
}


class LatencyBudgets(_Strict):
    p50: DurationThresholds | None = None
    p75: DurationThresholds | None = None
    p90: DurationThresholds | None = None
    p95: DurationThresholds | None = None
    p99: DurationThresholds | None = None
    p999: DurationThresholds | None = None

    def items(self) -> list[tuple[str, DurationThresholds]]:
        """The declared quantiles in ascending order."""
        return [(name, budget) for name in QUANTILES if (budget := getattr(self, name))]


class HttpSection(_Strict):
    histogram: MetricName = "http_request_duration_seconds"
    status_label: LabelName = "code"
    latency: LatencyBudgets | None = None
    error_ratio: RatioThresholds | None = None
    # Bucket upper bounds (seconds) the histogram declares; lets a latency SLO be checked.
    buckets: Annotated[list[Annotated[float, Field(gt=0)]], Field(min_length=1)] | None = None


class PoolSection(_Strict):
    utilization: RatioThresholds | None = None


class DatabaseSection(_Strict):
    histogram: MetricName = "db_query_duration_seconds"
    latency: LatencyBudgets | None = None
    pool: PoolSection | None = None


class CacheSpec(_Strict):
    name: Annotated[str, Field(min_length=1)]
    hit_ratio: LowRatioThresholds


class RuntimeSection(_Strict):
    memory: BytesThresholds | None = None
    goroutines: CountThresholds | None = None
    threads: CountThresholds | None = None
    tasks: CountThresholds | None = None
    gc_pause: DurationThresholds | None = None


# --- Metric names by language ------------------------------------------------------------------


@dataclass(frozen=True)
class MetricNames:
    """Every metric name a service's rules read; a spec's `metrics:` block overrides any."""

    up: str = "up"
    resident_memory: str = "process_resident_memory_bytes"
    cache_hits: str = "cache_hits_total"
    cache_misses: str = "cache_misses_total"
    cache_label: str = "cache"
    goroutines: str = "go_goroutines"
    threads: str = "go_threads"
    tasks: str = "python_asyncio_tasks"
    gc_pause: str = "go_gc_duration_seconds"
    pool_in_use: str = "go_sql_in_use_connections"
    pool_max: str = "go_sql_max_open_connections"
    pool_label: str = "db_name"
    pool_wait_seconds: str = "go_sql_wait_duration_seconds_total"
    pool_waits: str = "go_sql_wait_count_total"


LANGUAGE_METRICS: dict[str, MetricNames] = {
    "go": MetricNames(),
    "python": MetricNames(
        threads="python_threads",
        gc_pause="python_gc_pause_seconds",
        pool_in_use="db_client_connection_count",
        pool_max="db_client_connection_max",
        pool_label="pool",
        pool_wait_seconds="db_client_connection_wait_time_seconds",
        pool_waits="db_client_connection_wait_time_seconds",
    ),
}
METRIC_KEYS = tuple(MetricNames.__dataclass_fields__)


def _check_metric_overrides(names: dict[str, str]) -> dict[str, str]:
    for key, value in names.items():
        if key not in METRIC_KEYS:
            raise ValueError(f"unknown metric key {key!r}; known keys: {', '.join(METRIC_KEYS)}")
        pattern = _LABEL_NAME if key.endswith("_label") else _METRIC_NAME
        if not pattern.match(value):
            raise ValueError(f"{value!r} is not a valid Prometheus name for {key!r}")
    return names


MetricOverrides = Annotated[dict[str, str], AfterValidator(_check_metric_overrides)]


# --- Defaults and services ---------------------------------------------------------------------


RUNBOOK_PLACEHOLDERS = ("service", "alert", "signal")


def _check_runbook_url(template: str) -> str:
    try:
        names = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as error:
        raise ValueError(f"runbook_url is not a valid template: {error}") from None
    if unknown := [name for name in names if name not in RUNBOOK_PLACEHOLDERS]:
        raise ValueError(f"unknown placeholder {{{unknown[0]}}} in runbook_url; use "
                         + ", ".join(f"{{{name}}}" for name in RUNBOOK_PLACEHOLDERS))
    return template


class _Inheritable(_Strict):
    """Keys a service may set and `defaults` may set for every service."""

    labels: AlertLabels | None = None
    runbook_url: Annotated[str, AfterValidator(_check_runbook_url)] | None = None
    grafana_url: str | None = None
    rate_window: Duration | None = None
    for_: Wait | None = Field(None, alias="for")
    keep_firing_for: Wait | None = None
    min_events: Annotated[int, Field(gt=0)] | None = None
    metrics: MetricOverrides | None = None


class EmailReceiver(_Strict):
    to: str
    from_: str = Field(alias="from")
    smarthost: str  # host:port
    require_tls: bool = True


class Receiver(_Strict):
    """Where one severity's notifications go: a webhook, an email address, or both."""

    webhook_url: str | None = None
    email: EmailReceiver | None = None

    @model_validator(mode="after")
    def _somewhere(self) -> Receiver:
        if self.webhook_url is None and self.email is None:
            raise ValueError("set 'webhook_url' or 'email'")
        return self


class Receivers(_Strict):
    page: Receiver = Receiver(webhook_url="http://127.0.0.1:9095/page")  # critical
    ticket: Receiver = Receiver(webhook_url="http://127.0.0.1:9095/ticket")  # warning


class AlertmanagerSpec(_Strict):
    """Routing for `alerts/alertmanager.yml`: critical pages, warning opens a ticket."""

    receivers: Receivers = Receivers()
    group_wait: Wait = 30.0
    group_interval: Duration = 300.0
    repeat_interval: Duration = 14400.0


class Defaults(_Inheritable):
    alertmanager: AlertmanagerSpec = AlertmanagerSpec()
    prometheus: PrometheusSpec = PrometheusSpec()


SERVICE_NAME = re.compile(r"^[a-z][a-z0-9-]*$")


class ServiceSpec(_Inheritable):
    name: Annotated[str, Field(pattern=SERVICE_NAME.pattern, max_length=40)]
    selector: Annotated[Labels, Field(min_length=1)]
    language: Literal["go", "python"]
    http: HttpSection | None = None
    database: DatabaseSection | None = None
    caches: list[CacheSpec] = []
    runtime: RuntimeSection | None = None
    slos: list[SloSpec] = []

    @field_validator("slos")
    @classmethod
    def _unique_slos(cls, slos: list[SloSpec]) -> list[SloSpec]:
        _unique("SLO", [slo.name for slo in slos])
        return slos

    @model_validator(mode="after")
    def _slo_indicators_readable(self) -> ServiceSpec:
        for i, slo in enumerate(self.slos):
            if slo.signal in ("availability", "latency") and self.http is None:
                raise ValueError(f"slos[{i}] ({slo.name}): the {slo.signal} indicator reads "
                                 "the service's HTTP histogram; declare 'http:' (its histogram "
                                 "and status_label) or use indicator: {events: ...}")
            if slo.signal == "latency" and self.http is not None:
                problem = latency_problem(slo.indicator.latency, self.http.buckets)
                if problem:
                    raise ValueError(f"slos[{i}].indicator.latency: {problem}")
        return self

    @model_validator(mode="after")
    def _runtime_matches_language(self) -> ServiceSpec:
        if self.runtime is None:
            return self
        if self.language == "python" and self.runtime.goroutines is not None:
            raise ValueError("'runtime.goroutines' is for go services; python services have "
                             "'runtime.tasks' (asyncio tasks) instead")
        if self.language == "go" and self.runtime.tasks is not None:
            raise ValueError("'runtime.tasks' (asyncio tasks) is for python services; go "
                             "services have 'runtime.goroutines' instead")
        return self

    @field_validator("caches")
    @classmethod
    def _unique_caches(cls, caches: list[CacheSpec]) -> list[CacheSpec]:
        _unique("cache", [cache.name for cache in caches])
        return caches


class SpecFile(_Strict):
    version: Literal[1]
    defaults: Defaults = Defaults()
    services: Annotated[list[ServiceSpec], Field(min_length=1)]

    @field_validator("services")
    @classmethod
    def _unique_service_names(cls, services: list[ServiceSpec]) -> list[ServiceSpec]:
        _unique("service", [service.name for service in services])
        return services

    @model_validator(mode="after")
    def _slos_fit_prometheus(self) -> SpecFile:
        problems = [problem for i, service in enumerate(self.services)
                    for j, slo in enumerate(service.slos)
                    if (problem := check_against_prometheus(
                        slo, f"services[{i}].slos[{j}]", self.defaults.prometheus))]
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _unique(kind: str, names: list[str]) -> None:
    if duplicates := sorted({name for name in names if names.count(name) > 1}):
        raise ValueError(f"{kind} names must be unique, repeated: {', '.join(duplicates)}")


# --- Resolved model (what builders consume) ----------------------------------------------------

BUILTIN_RATE_WINDOW = 300.0
BUILTIN_FOR = 300.0
BUILTIN_KEEP_FIRING_FOR = 0.0
BUILTIN_MIN_EVENTS = 10


@dataclass(frozen=True)
class Service:
    """One service with every default applied; builders read only this."""

    name: str
    selector: dict[str, str]
    language: str
    labels: dict[str, str]
    runbook_url: str | None
    grafana_url: str | None
    rate_window: float
    for_: float
    keep_firing_for: float
    min_events: int
    metrics: MetricNames
    http: HttpSection | None = None
    database: DatabaseSection | None = None
    caches: tuple[CacheSpec, ...] = ()
    runtime: RuntimeSection | None = None
    slos: tuple[SloSpec, ...] = ()
    prometheus: PrometheusSpec = field(default_factory=PrometheusSpec)
    # Routing is global (declared in `defaults`); every service carries the same settings
    # so output builders need nothing but the services.
    alertmanager: AlertmanagerSpec = field(default_factory=AlertmanagerSpec)

    def for_of(self, budget: _Thresholds | Leak) -> float:
        """The `for` of one budget: its own when set, else the service's."""
        return budget.for_ if budget.for_ is not None else self.for_


def _pick(service_value, default_value, builtin):
    if service_value is not None:
        return service_value
    if default_value is not None:
        return default_value
    return builtin


def resolve(spec: SpecFile) -> list[Service]:
    """Merge `defaults` into every service (service keys win) and pick metric names."""
    defaults = spec.defaults
    services = []
    for s in spec.services:
        overrides = {**(defaults.metrics or {}), **(s.metrics or {})}
        metrics = LANGUAGE_METRICS[s.language]
        if overrides:
            metrics = MetricNames(**{**metrics.__dict__, **overrides})
        services.append(Service(
            name=s.name,
            selector=dict(s.selector),
            language=s.language,
            labels={**(defaults.labels or {}), **(s.labels or {})},
            runbook_url=_pick(s.runbook_url, defaults.runbook_url, None),
            grafana_url=_pick(s.grafana_url, defaults.grafana_url, None),
            rate_window=_pick(s.rate_window, defaults.rate_window, BUILTIN_RATE_WINDOW),
            for_=_pick(s.for_, defaults.for_, BUILTIN_FOR),
            keep_firing_for=_pick(s.keep_firing_for, defaults.keep_firing_for,
                                  BUILTIN_KEEP_FIRING_FOR),
            min_events=_pick(s.min_events, defaults.min_events, BUILTIN_MIN_EVENTS),
            metrics=metrics,
            http=s.http,
            database=s.database,
            caches=tuple(s.caches),
            runtime=s.runtime,
            slos=tuple(s.slos),
            prometheus=defaults.prometheus,
            alertmanager=defaults.alertmanager,
        ))
    return services
