"""The spec model (version 1), composed from the signals, and its resolution.

Two layers: the *input* models mirror the YAML exactly (every key optional where the
contract says so, unknown keys forbidden) and are what pydantic validates. The budget
keys inside ``http``, ``database``, ``runtime`` (and next to them, like ``caches``) are
not listed here: each signal module declares the keys it reads (see
:mod:`watchkeeper.signals.base`) and this module adds them to the section models.
``resolve()`` then turns a validated spec into a :class:`~watchkeeper.model.Spec` whose
every value is concrete (defaults merged, metric names chosen by language profile),
which is all the builders ever see.
"""

from __future__ import annotations

import re
import string
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    create_model,
    field_validator,
    model_validator,
)
from watchkeeper import model, presets, profiles, selectors
from watchkeeper.budgets import (
    QUANTILES,  # noqa: F401 - re-exported for callers of the spec module
    Duration,
    LabelName,
    MetricName,
    Strict,
    Wait,
    check_label_name,
    resolve_value,
)
from watchkeeper.signals import checks as signal_checks
from watchkeeper.signals import keys as signal_keys
from watchkeeper.slo_spec import PrometheusSpec, check_against_prometheus

SPEC_VERSION = 1
RESERVED_LABELS = ("service", "signal", "severity")


def _check_label_names(labels: dict[str, str]) -> dict[str, str]:
    for name in labels:
        check_label_name(name)
    return labels


def _check_alert_labels(labels: dict[str, str]) -> dict[str, str]:
    _check_label_names(labels)
    if taken := [name for name in labels if name in RESERVED_LABELS]:
        raise ValueError(f"label {taken[0]!r} is set by watchkeeper on every alert; "
                         "choose another name")
    return labels


Labels = Annotated[dict[str, str], AfterValidator(_check_label_names)]
AlertLabels = Annotated[dict[str, str], AfterValidator(_check_alert_labels)]


def _check_metric_overrides(names: dict[str, str]) -> dict[str, str]:
    known = (*profiles.metric_keys(), *presets.POOL_STATE_KEYS)
    for key, value in names.items():
        if key == presets.PRESET_KEY:
            presets.check_preset_name(value)
            continue
        if key not in known:
            raise ValueError(f"unknown metric key {key!r}; known keys: {', '.join(known)}")
        pattern = r"^[a-zA-Z_][a-zA-Z0-9_]*$" if key.endswith("_label") else \
            r"^[a-zA-Z_:][a-zA-Z0-9_:]*$"
        if not re.match(pattern, value):
            raise ValueError(f"{value!r} is not a valid Prometheus name for {key!r}")
    return names


MetricOverrides = Annotated[dict[str, str], BeforeValidator(presets.as_mapping),
                            AfterValidator(_check_metric_overrides),
                            WithJsonSchema({"anyOf": [
                                {"type": "string", "enum": list(presets.NAMES)},
                                {"type": "object", "additionalProperties": {"type": "string"}}]})]

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


BUILTIN_RATE_WINDOW = 300.0
BUILTIN_FOR = 300.0
BUILTIN_KEEP_FIRING_FOR = 0.0


class Inheritable(Strict):
    """Keys a service may set and `defaults` may set for every service."""

    labels: AlertLabels | None = Field(
        None, description="Extra labels on every alert (service, signal and severity are "
                          "set by watchkeeper).")
    runbook_url: Annotated[str, AfterValidator(_check_runbook_url)] | None = Field(
        None, description="Template of each alert's runbook_url annotation; placeholders "
                          "{service}, {alert}, {signal}.")
    grafana_url: str | None = Field(
        None, description="Grafana base URL; when set, each alert carries a dashboard_url "
                          "to the panel explaining it.")
    rate_window: Duration | None = Field(
        None, description="Window of every rate and quantile (default 5m).")
    for_: Wait | None = Field(
        None, alias="for", description="How long a budget must be exceeded before its alert "
                                       "fires (default 5m); each budget may set its own.")
    keep_firing_for: Wait | None = Field(
        None, description="How long an alert keeps firing after it clears (default 0s; needs "
                          "Prometheus 2.42+).")
    min_events: Annotated[int, Field(gt=0)] | None = Field(
        None, description="Fewest events (requests, lookups, queries) per rate window for a "
                          "ratio or quantile to be judged; see docs/spec.md for the default.")
    serving: Literal["single", "multiprocess"] | None = Field(
        None, description="How the service is served: single (one process per target, the "
                          "default) or multiprocess (a pre-forking server such as gunicorn "
                          "with several workers behind one /metrics, prometheus-client's "
                          "multiprocess mode); budgets whose series that mode cannot serve "
                          "are refused.")
    metrics: MetricOverrides | None = Field(
        None, description="Rename any metric a rule reads: {metric key: name}, or a naming "
                          "preset (otel, prometheus-fastapi-instrumentator) as `metrics: otel` "
                          "or {preset: otel, key: name…}; see docs/spec.md for the keys.")


class EmailReceiver(Strict):
    """An email receiver (Alertmanager's email_configs)."""

    to: str = Field(description="Recipient address.")
    from_: str = Field(alias="from", description="Sender address.")
    smarthost: str = Field(description="SMTP server as host:port.")
    require_tls: bool = Field(True, description="Refuse to send without STARTTLS.")

    def resolve(self) -> model.EmailReceiver:
        return model.EmailReceiver(self.to, self.from_, self.smarthost, self.require_tls)


class Receiver(Strict):
    """Where one severity's notifications go: a webhook, an email address, or both."""

    webhook_url: str | None = Field(None, description="URL receiving Alertmanager webhooks.")
    email: EmailReceiver | None = Field(None, description="Email receiver.")

    @model_validator(mode="after")
    def _somewhere(self) -> Receiver:
        if self.webhook_url is None and self.email is None:
            raise ValueError("set 'webhook_url' or 'email'")
        return self

    def resolve(self) -> model.Receiver:
        return model.Receiver(self.webhook_url, self.email.resolve() if self.email else None)


class Receivers(Strict):
    """The two receivers: `page` gets critical alerts, `ticket` warnings."""

    page: Receiver = Field(description="Receives critical alerts.")
    ticket: Receiver = Field(description="Receives warning alerts.")

    def resolve(self) -> model.Receivers:
        return model.Receivers(self.page.resolve(), self.ticket.resolve())


RULES_ONLY = "none"
NO_RECEIVERS = (
    "no Alertmanager receivers declared: add 'receivers:' with 'page' (critical alerts) and "
    "'ticket' (warnings), each a 'webhook_url' or an 'email', or write 'receivers: none' to "
    "generate rules only (no Alertmanager routing)")


def _require(*keys: str):
    """JSON Schema hook: `keys` are required, although pydantic sees a default (which exists
    only so that a missing key gets NO_RECEIVERS instead of a bare "missing")."""
    def extra(schema: dict) -> None:
        schema["required"] = sorted({*schema.get("required", []), *keys})
        for key in keys:
            schema.get("properties", {}).get(key, {}).pop("default", None)
    return extra


def _rules_only(value: object) -> object:
    """`receivers: none` is kept as None: an explicit choice of no routing."""
    return None if value == RULES_ONLY else value


def _none_in_schema(schema: dict) -> None:
    """Advertise `none` (not null, and no default) as the rules-only choice in the schema."""
    schema.pop("default", None)
    for option in schema.get("anyOf", []):
        if option.get("type") == "null":
            option.clear()
            option["const"] = RULES_ONLY


class AlertmanagerSpec(Strict):
    """Routing for `alerts/alertmanager.yml` and the mergeable `alerts/alertmanager-routes.yml`:
    critical pages, warning opens a ticket. No receiver is ever invented: `receivers` is
    required (`none` for rules only)."""

    model_config = ConfigDict(json_schema_extra=_require("receivers"))

    receivers: Annotated[Receivers | None, BeforeValidator(_rules_only)] = Field(
        None, description="Where pages and tickets go, or `none` for rules only (no routing "
        "files).", json_schema_extra=_none_in_schema)
    group_wait: Wait = Field(30.0, description="Wait before the first notification of a "
                                                "group.", json_schema_extra={"default": "30s"})
    group_interval: Duration = Field(300.0, description="Wait before notifying about new "
                                                        "alerts of a group.",
                                     json_schema_extra={"default": "5m"})
    repeat_interval: Duration = Field(14400.0, description="Wait before repeating a "
                                                           "notification.",
                                      json_schema_extra={"default": "4h"})

    @model_validator(mode="after")
    def _receivers_declared(self) -> AlertmanagerSpec:
        if "receivers" not in self.model_fields_set:
            raise ValueError(NO_RECEIVERS)
        return self

    def resolve(self) -> model.Routing:
        return model.Routing(self.receivers.resolve() if self.receivers else None,
                             self.group_wait, self.group_interval, self.repeat_interval)


class Defaults(Inheritable):
    """Keys applied to every service that does not set them, and the shared routing."""

    model_config = ConfigDict(json_schema_extra=_require("alertmanager"))

    # Validated even when absent, so a spec without receivers is told what to add.
    alertmanager: AlertmanagerSpec = Field(default_factory=dict, validate_default=True,
                                           description="Alertmanager routing (required).")
    prometheus: PrometheusSpec = Field(PrometheusSpec(), description=(
        "Facts about the Prometheus evaluating the rules, to refuse SLOs it cannot compute."))


SERVICE_NAME = re.compile(r"^[a-z][a-z0-9-]*$")

# --- Sections, composed from the keys signals declare ----------------------------------------

SECTION_DOCS = {
    "http": "HTTP server budgets, from one request-duration histogram.",
    "database": "Database client budgets: query durations and the connection pool.",
    "runtime": "Per-instance process and runtime budgets.",
}
SECTION_SETTINGS: dict[str, dict[str, Any]] = {
    "http": {
        "histogram": (MetricName, Field("http_request_duration_seconds", description=(
            "Request-duration histogram (without _bucket); its _count is the request rate."))),
        "status_label": (LabelName, Field("code", description="Label holding the HTTP status "
                                                              "code; 5xx counts as an error.")),
    },
    "database": {
        "histogram": (MetricName, Field("db_query_duration_seconds", description=(
            "Query-duration histogram (without _bucket)."))),
    },
}


def _section_model(section: str) -> type[Strict]:
    fields: dict[str, Any] = dict(SECTION_SETTINGS.get(section, {}))
    for key in signal_keys():
        if key.section == section:
            fields[key.name] = (key.type | None, Field(key.default, description=key.description))
    return create_model(f"{section.title()}Section", __base__=Strict,
                        __doc__=SECTION_DOCS.get(section, f"Budgets under `{section}`."),
                        **fields)


def _service_fields() -> dict[str, Any]:
    """The budget-bearing keys of a service, in registry order of first appearance."""
    fields: dict[str, Any] = {}
    for key in signal_keys():
        if key.section is None:
            fields[key.name] = (key.type, Field(key.default, description=key.description))
        elif key.section not in fields:
            fields[key.section] = (_section_model(key.section) | None,
                                   Field(None, description=SECTION_DOCS.get(key.section)))
    return fields


def _check_language(service: Strict) -> Strict:
    """Keys the service's language cannot have (goroutines on python…), per its profile."""
    for path, message in profiles.LANGUAGES[service.language].get("unsupported", {}).items():
        if _at(service, path) is not None:
            raise ValueError(message)
    return service


def _at(spec: Any, path: str) -> Any:
    for part in path.split("."):
        spec = getattr(spec, part, None)
        if spec is None:
            return None
    return spec


class _ServiceBase(Inheritable):
    name: Annotated[str, Field(pattern=SERVICE_NAME.pattern, max_length=40)] = Field(
        description="Lowercase name: letters, digits, dashes; the `service` label of every "
                    "alert and recording.")
    selector: Annotated[Any, BeforeValidator(selectors.parse), WithJsonSchema({
        "anyOf": [
            {"type": "object", "minProperties": 1, "additionalProperties": {"anyOf": [
                {"type": "string"},
                {"type": "object", "minProperties": 1, "maxProperties": 1,
                 "properties": {kind: {"type": "string"} for kind in selectors.OPS},
                 "additionalProperties": False}]}},
            {"type": "string", "examples": ['{job=~"a|b", route!~"/metrics|/healthz"}']}],
        "examples": [{"job": "checkout"},
                     {"job": {"regex": "rockstar|rockstar-canary"},
                      "route": {"not_regex": "/metrics|/healthz"}}]})] = Field(
        description="Label matchers selecting the service's series: {job: checkout}, "
                    "{label: {regex|not_regex|not: value}}, or PromQL matchers as a string; "
                    "regexes are RE2 as Prometheus reads them.")
    language: Literal[profiles.LANGUAGE_NAMES] = Field(  # type: ignore[valid-type]
        description="Which exporter conventions the metric names follow: go or python.")

    @model_validator(mode="after")
    def _language_keys(self) -> _ServiceBase:
        return _check_language(self)

    @model_validator(mode="after")
    def _across_keys(self) -> _ServiceBase:
        for check in signal_checks():
            check(self)
        return self


ServiceSpec = create_model("ServiceSpec", __base__=_ServiceBase,
                           __doc__="One service and its budgets.", **_service_fields())


class SpecFile(Strict):
    """A watchkeeper spec file."""

    model_config = ConfigDict(json_schema_extra=_require("defaults"))

    version: Literal[1] = Field(description="Spec format version; always 1.")
    defaults: Defaults = Field(default_factory=dict, validate_default=True,
                               description="Defaults for every service.")
    services: Annotated[list[ServiceSpec], Field(min_length=1)] = Field(  # type: ignore[valid-type]
        description="The services and their budgets.")

    @model_validator(mode="after")
    def _presets_and_units(self) -> SpecFile:
        for index, service in enumerate(self.services):
            metrics = {**(self.defaults.metrics or {}), **(service.metrics or {})}
            preset = presets.preset_of(metrics)
            declared = {key.path: _at(service, key.path) is not None for key in signal_keys()}
            explicit = {f"{section}.{name}" for section in SECTION_SETTINGS
                        if (holder := getattr(service, section, None)) is not None
                        for name in holder.model_fields_set}
            settings = {section: _settings(getattr(service, section, None), section, preset)
                        for section in SECTION_SETTINGS}
            serving = service.serving or self.defaults.serving or "single"
            try:
                presets.check_service(metrics, declared, settings, explicit, serving)
            except ValueError as error:
                raise ValueError(f"services[{index}] ({service.name}): {error}") from None
        return self

    @field_validator("services")
    @classmethod
    def _unique_service_names(cls, services: list) -> list:
        names = [service.name for service in services]
        if duplicates := sorted({name for name in names if names.count(name) > 1}):
            raise ValueError(f"service names must be unique, repeated: {', '.join(duplicates)}")
        return services

    @model_validator(mode="after")
    def _slos_fit_prometheus(self) -> SpecFile:
        problems = [problem for i, service in enumerate(self.services)
                    for j, slo in enumerate(getattr(service, "slos", None) or [])
                    if (problem := check_against_prometheus(
                        slo, f"services[{i}].slos[{j}]", self.defaults.prometheus))]
        if problems:
            raise ValueError("; ".join(problems))
        return self


# --- Resolution ------------------------------------------------------------------------------


def _pick(service_value, default_value, builtin):
    if service_value is not None:
        return service_value
    if default_value is not None:
        return default_value
    return builtin


def _settings(holder: Any, section: str, preset: presets.Preset | None) -> dict[str, Any]:
    """A section's settings: what the user wrote, else the naming preset's, else built in."""
    out = {}
    for name, (_, field) in SECTION_SETTINGS.get(section, {}).items():
        written = holder is not None and name in holder.model_fields_set
        out[name] = getattr(holder, name) if written else \
            presets.setting(preset, section, name) or field.default
    return out


class Shared:
    """Equal parts of resolved services, kept once for a whole spec: the profile, settings,
    labels and budgets most services have in common (a spec of 5,000 services would
    otherwise hold 5,000 equal copies of each). One per load, never global.

    A part is shared only when it is the same in every way that can show in output: equal
    and with the same repr (``1 == 1.0`` and ``True == 1`` are not the same value), a
    mapping with the same keys in the same order and the very same (or equal string)
    values. Resolved values are frozen; shared mappings are read, never written.
    """

    def __init__(self, limit: int | None = None) -> None:
        self._values: dict[Any, Any] = {}
        self._mappings: dict[tuple[str, int], dict] = {}
        self._limit = limit  # parts kept at most (forgotten all at once past it)

    def _room(self) -> None:
        if self._limit is not None and len(self._values) + len(self._mappings) >= self._limit:
            self._values.clear()
            self._mappings.clear()

    def value(self, value: Any) -> Any:
        """`value`, or the same value resolved before."""
        self._room()
        try:
            found = self._values.setdefault(value, value)
        except TypeError:  # unhashable (a dict or list inside): kept as it is
            return value
        return found if found is value or repr(found) == repr(value) else value

    def mapping(self, kind: str, mapping: dict) -> dict:
        """`mapping`, or one with the same items in the same order seen before."""
        self._room()
        key = (kind, hash(tuple((k, v if type(v) is str else id(v))
                                for k, v in mapping.items())))
        found = self._mappings.setdefault(key, mapping)
        if found is mapping or list(found) != list(mapping):
            return mapping
        same = all(found[k] is v or (type(v) is str and found[k] == v)
                   for k, v in mapping.items())
        return found if same else mapping

    def profile(self, language: str, metrics: dict[str, str]) -> model.Profile:
        key = ("profile", language, *metrics.items())
        if (found := self._values.get(key)) is None:
            found = self._values[key] = profiles.profile(language, metrics)
        return found


def _budgets(spec: Any, default_for: float, preset: presets.Preset | None = None,
             shared: Shared | None = None) -> tuple[dict[str, Any], dict[str, dict]]:
    """(resolved budgets by spec path, settings by section) of one service."""
    shared = shared or Shared()
    budgets: dict[str, Any] = {}
    settings: dict[str, dict] = {}
    for key in signal_keys():
        holder = spec if key.section is None else getattr(spec, key.section)
        if holder is None:
            continue
        if key.section is not None:
            settings[shared.value(key.section)] = shared.mapping(
                "setting", _settings(holder, key.section, preset))
        value = getattr(holder, key.name)
        if value is None:
            continue
        resolved = resolve_value(value, default_for)
        if resolved is not None and resolved != ():
            budgets[shared.value(key.path)] = shared.value(resolved)
    return shared.mapping("budgets", budgets), shared.mapping("settings", settings)


def _service(s: Any, defaults: Defaults, shared: Shared | None = None) -> model.Service:
    shared = shared or Shared()
    for_ = _pick(s.for_, defaults.for_, BUILTIN_FOR)
    metrics = {**(defaults.metrics or {}), **(s.metrics or {})}
    budgets, settings = _budgets(s, for_, presets.preset_of(metrics), shared)
    return model.Service(
        name=s.name,
        selector=s.selector,
        profile=shared.profile(s.language, metrics),
        labels=shared.mapping("labels", {**(defaults.labels or {}), **(s.labels or {})}),
        runbook_url=_pick(s.runbook_url, defaults.runbook_url, None),
        grafana_url=_pick(s.grafana_url, defaults.grafana_url, None),
        rate_window=_pick(s.rate_window, defaults.rate_window, BUILTIN_RATE_WINDOW),
        for_=for_,
        keep_firing_for=_pick(s.keep_firing_for, defaults.keep_firing_for,
                              BUILTIN_KEEP_FIRING_FOR),
        min_events=_pick(s.min_events, defaults.min_events, None),
        settings=settings,
        budgets=budgets,
    )


def resolve_service(service: Any, defaults: Defaults, shared: Shared | None = None
                    ) -> model.Service:
    """One validated service with `defaults` merged in (see :func:`resolve`); services
    resolved with the same `shared` share their equal parts."""
    return _service(service, defaults, shared)


def routing(defaults: Defaults) -> model.Routing:
    """The Alertmanager routing every service shares."""
    return defaults.alertmanager.resolve()


def resolve(spec: SpecFile) -> model.Spec:
    """Merge `defaults` into every service (service keys win), resolve every budget and
    pick metric names by language profile."""
    shared = Shared()
    return model.Spec(
        services=tuple(_service(s, spec.defaults, shared) for s in spec.services),
        alertmanager=routing(spec.defaults),
    )
