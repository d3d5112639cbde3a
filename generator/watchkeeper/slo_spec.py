"""SLOs in the spec: the `slos:` section, the burn-rate tier table, and what is refused.

Kept apart from ``spec.py`` (which only adds the `slos` key) and from the signal module
(``signals/slo.py``, which builds rules) so the pure arithmetic of the multiwindow
multi-burn-rate table can be validated, tested and documented on its own, and so the spec
can refuse at load time, with a spec path, an SLO whose alerts could never fire.

The tier table is the SRE Workbook's ("Alerting on SLOs", table 5-8): a tier fires when
both its long and its short window burn the error budget faster than its factor. The
factors there are for a 30-day window; each tier is defined by the share of the budget it
lets burn within its long window (2 %, 5 %, 10 %, 10 %), so for another window the factor
scales with the window (factor = share × window / long window) and the windows stay put.
A scaled factor below 1 is raised to 1: a burn below 1× never exhausts the budget within
the window, so alerting on it is noise.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Annotated, Literal

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

DAY = 86400.0
REFERENCE_WINDOW = 30 * DAY
DEFAULT_WINDOW = 30 * DAY
DEFAULT_EVALUATION_INTERVAL = 60.0  # Prometheus' own default global.evaluation_interval
RAW_WINDOW = 300.0  # the one window read from raw series; every other one is derived
TINY_RATE = 1e-12  # events/s below which traffic counts as none (one event in ~30,000 years)


@dataclass(frozen=True)
class Tier:
    """One row of the table: a burn-rate condition over a long and a short window."""

    name: str  # the `burn_tier` label value and the key under `alerting.tiers`
    severity: Literal["critical", "warning"]
    long: float  # seconds
    short: float
    budget_share: float  # share of the whole budget this tier lets burn within `long`
    default_for: float

    def factor(self, window: float) -> float:
        """Burn-rate factor for an SLO `window`: 14.4 for the fast page tier of 30 days."""
        return max(1.0, round(self.budget_share * window / self.long, 6))

    def scaled(self, time_scale: float) -> Tier:
        """The tier with its windows and default `for` divided by `time_scale` (an SLO's
        `time_scale`); the same tier at 1."""
        if time_scale == 1:
            return self
        return replace(self, long=self.long / time_scale, short=self.short / time_scale,
                       default_for=self.default_for / time_scale)


# Relative distance a burn keeps from every threshold: below it, float noise decides (a 500h
# window at 90% puts page-1h at 10 x 0.09999999999999998 = 0.9999999999999998, yet promtool
# reads (10 * 0.1) = 1, which an error ratio can never exceed). A tier whose threshold is
# that close to an error ratio of 1 is refused; a scenario's burn that close to a factor is
# moved off it (`signals.slo.profiles`).
THRESHOLD_CLEARANCE = 1e-6

TIERS: tuple[Tier, ...] = (
    Tier("page-1h", "critical", 3600.0, 300.0, 0.02, 120.0),
    Tier("page-6h", "critical", 6 * 3600.0, 1800.0, 0.05, 300.0),
    Tier("ticket-1d", "warning", DAY, 2 * 3600.0, 0.10, 900.0),
    Tier("ticket-3d", "warning", 3 * DAY, 6 * 3600.0, 0.10, 900.0),
)
TIER_NAMES = tuple(tier.name for tier in TIERS)
TierName = Literal["page-1h", "page-6h", "ticket-1d", "ticket-3d"]


def windows(window: float, time_scale: float = 1.0) -> list[float]:
    """Every window an SLO's rules record, shortest first: the tier windows and `window`."""
    tiers = [t.scaled(time_scale) for t in TIERS]
    return sorted({RAW_WINDOW / time_scale, *(t.long for t in tiers), *(t.short for t in tiers),
                   window})


def detection_time(tier: Tier, window: float, burn: float) -> float | None:
    """Seconds after a steady burn of `burn`× starts until `tier`'s long window crosses its
    factor (the short window crosses sooner), or None when it never does."""
    factor = tier.factor(window)
    if burn <= factor:
        return None
    return tier.long * factor / burn


# --- Spec models -----------------------------------------------------------------------------

Duration = Annotated[float, BeforeValidator(units.parse_duration), WithJsonSchema(
    {"type": "string", "pattern": r"^\d*\.?\d+(ns|us|µs|ms|s|m|h|d|w)$",
     "examples": ["400ms", "7d", "30d"]})]
Wait = Annotated[float, BeforeValidator(units.parse_wait), WithJsonSchema(
    {"type": "string", "pattern": r"^\d*\.?\d+(ns|us|µs|ms|s|m|h|d|w)$",
     "examples": ["0s", "2m"]})]
Objective = Annotated[float, BeforeValidator(units.parse_ratio), WithJsonSchema(
    {"anyOf": [{"type": "string", "pattern": r"^\d*\.?\d+%$"},
               {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}],
     "examples": ["99.9%", "99%", 0.995]})]

_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
SLO_NAME = re.compile(r"^[a-z][a-z0-9-]*$")
RESERVED_SLO_LABELS = ("service", "slo", "signal", "severity", "burn_tier")


def _check_labels(labels: dict[str, str]) -> dict[str, str]:
    for name in labels:
        if not _LABEL_NAME.match(name) or name.startswith("__"):
            raise ValueError(f"{name!r} is not a valid Prometheus label name")
        if name in RESERVED_SLO_LABELS:
            raise ValueError(f"label {name!r} is set by watchkeeper on every SLO alert; "
                             "choose another name")
    return labels


SloLabels = Annotated[dict[str, str], AfterValidator(_check_labels)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _has_window(query: str) -> str:
    if "{{window}}" not in query.replace(" ", ""):
        raise ValueError("the query must contain {{window}} where the rate window goes, "
                         "e.g. sum(rate(payments_total[{{window}}]))")
    return query


Query = Annotated[str, Field(min_length=1), AfterValidator(_has_window)]


class Events(_Strict):
    """Any PromQL: bad events and all events per second, each one series."""

    errors: Query = Field(description="PromQL: bad events per second over {{window}}; "
                                      "returning nothing counts as zero errors.")
    total: Query = Field(description="PromQL: all events per second over {{window}}.")

    def resolve(self) -> model.SloEvents:
        return model.SloEvents(self.errors, self.total)


class EventsIndicator(_Strict):
    events: Events = Field(description="Bad and all events, as two PromQL queries.")

    def resolve(self) -> model.SloEvents:
        return self.events.resolve()


class RatioIndicator(_Strict):
    """A query that already is the error ratio over `{{window}}` (Sloth's raw SLI). With no
    event counts the long windows average it over time: every moment weighs the same."""

    error_ratio: Query = Field(description="PromQL: the error ratio over {{window}}.")

    def resolve(self) -> model.SloErrorRatio:
        return model.SloErrorRatio(self.error_ratio)


class LatencyIndicator(_Strict):
    """Good = requests served within `latency`, read from the bucket whose `le` is it."""

    latency: Duration = Field(description="Requests within this duration are good; it "
                                          "must be a bucket boundary of the histogram.")

    def resolve(self) -> model.SloLatency:
        return model.SloLatency(self.latency)


Indicator = Literal["availability"] | LatencyIndicator | EventsIndicator | RatioIndicator


class TierPolicy(_Strict):
    for_: Wait | None = Field(None, alias="for", description=(
        "How long the tier's condition must hold before it fires (default: 2m for page-1h, "
        "5m for page-6h, 15m for the tickets)."))


class SeverityPolicy(_Strict):
    """Extra labels and annotations of the page (critical) or the ticket (warning) alerts."""

    labels: SloLabels = Field({}, description="Extra labels of these alerts.")
    annotations: dict[str, str] = Field({}, description="Extra or replaced annotations.")

    def resolve(self) -> model.SloExtras:
        return model.SloExtras(dict(self.labels), dict(self.annotations))


class Alerting(_Strict):
    name: Annotated[str, Field(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")] = Field(
        "SloErrorBudgetBurn", description="Alert name of every burn tier of this SLO.")
    labels: SloLabels = Field({}, description="Extra labels of this SLO's alerts.")
    annotations: dict[str, str] = Field({}, description="Extra or replaced annotations.")
    page: SeverityPolicy = Field(SeverityPolicy(), description="Labels and annotations of "
                                 "the page (critical) alerts only.")
    ticket: SeverityPolicy = Field(SeverityPolicy(), description="Labels and annotations of "
                                   "the ticket (warning) alerts only.")
    tiers: dict[TierName, Literal[False] | TierPolicy] = Field({}, description=(
        "Per burn tier (page-1h, page-6h, ticket-1d, ticket-3d): false to switch it off, or "
        "its own `for`."))

    def enabled(self, time_scale: float = 1.0) -> list[tuple[Tier, float]]:
        """The tiers that alert, each with its `for` (windows and default `for` divided by
        `time_scale`; a `for` set here is taken as written)."""
        out = []
        for tier in (t.scaled(time_scale) for t in TIERS):
            policy = self.tiers.get(tier.name, TierPolicy())
            if policy is not False:
                out.append((tier, tier.default_for if policy.for_ is None else policy.for_))
        return out

    def resolve(self, time_scale: float = 1.0) -> model.SloAlerting:
        return model.SloAlerting(self.name, tuple(self.enabled(time_scale)), dict(self.labels),
                                 dict(self.annotations), self.page.resolve(),
                                 self.ticket.resolve())


class SloSpec(_Strict):
    name: Annotated[str, Field(pattern=SLO_NAME.pattern, max_length=40)] = Field(
        description="Lowercase name, unique within the service: the `slo` label.")
    objective: Objective = Field(description="Share of good events, such as 99.9%.")
    window: Duration = Field(DEFAULT_WINDOW, description="Rolling compliance window.",
                             json_schema_extra={"default": "30d"})
    indicator: Indicator = Field(description=(
        "What a good event is: availability (non-5xx responses of the HTTP histogram), "
        "{latency: 400ms}, {events: {errors, total}} or {error_ratio: ...}."))
    description: str | None = Field(None, description="Shown as an annotation.")
    labels: SloLabels = Field({}, description="Extra labels of this SLO's alerts.")
    min_events: Annotated[int, Field(gt=0)] | None = Field(None, description=(
        "Fewest events a tier's long window needs before it may fire (also at least "
        "1 / (factor × budget)); default: the service's min_events, else 10."))
    alerting: Literal[False] | Alerting = Field(Alerting(), description=(
        "Alert policy, or false for recordings and panels only."))
    time_scale: Annotated[int, Field(ge=1, le=60)] = Field(1, description=(
        "Divides every window of the burn-rate table (1h/5m ... 3d/6h), the 5m raw rate and "
        "the tiers' default `for` by this: at 60 the fast page looks back 1m and 5s. For "
        "demos and end-to-end tests that must see a burn page within a minute; production "
        "SLOs keep 1. Factors stay those of `window` (write 12h for a 30d-like table at 60). "
        "A divisor of 60, so every window stays whole seconds; every SLO of a service must "
        "use the same value."))

    @property
    def budget(self) -> float:
        return 1.0 - self.objective

    @property
    def signal(self) -> str:
        if self.indicator == "availability":
            return "availability"
        return "latency" if isinstance(self.indicator, LatencyIndicator) else "slo"

    @property
    def raw_window(self) -> float:
        """The one window read from raw series: 5m, divided by `time_scale`."""
        return RAW_WINDOW / self.time_scale

    def tiers(self) -> list[tuple[Tier, float]]:
        return [] if self.alerting is False else self.alerting.enabled(self.time_scale)

    def windows(self) -> list[float]:
        return windows(self.window, self.time_scale)

    def resolve(self, default_for: float | None = None) -> model.Slo:
        """The plain resolved SLO builders read (`default_for` is unused: every tier has
        its own default `for`)."""
        indicator = self.indicator if isinstance(self.indicator, str) \
            else self.indicator.resolve()
        return model.Slo(self.name, self.objective, self.window, indicator, self.description,
                         dict(self.labels), self.min_events,
                         None if self.alerting is False else
                         self.alerting.resolve(self.time_scale), self.time_scale)

    @model_validator(mode="after")
    def _can_fire(self) -> SloSpec:
        if 60 % self.time_scale:
            raise ValueError(f"time_scale {self.time_scale} does not divide 60; use one of "
                             "1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60 (every window then "
                             "stays whole seconds)")
        if self.objective >= 1.0:
            raise ValueError("an objective of 100% leaves no error budget to burn; "
                             "use a threshold alert instead")
        for tier, _ in self.tiers():
            if tier.long >= self.window:
                raise ValueError(
                    f"tier {tier.name} looks back {units.prometheus_duration(tier.long)}, "
                    f"not shorter than the SLO window "
                    f"{units.prometheus_duration(self.window)}; lengthen the window or set "
                    f"alerting.tiers.{tier.name}: false")
            factor = tier.factor(self.window)
            if factor * self.budget >= 1.0 - THRESHOLD_CLEARANCE:
                raise ValueError(
                    f"objective {self.objective:.6g} leaves a budget of "
                    f"{self.budget:.6g}; tier {tier.name} would need an error ratio above "
                    f"{factor:g} × {self.budget:.6g} = {factor * self.budget:.4g}, which "
                    f"can never happen; raise the objective or set "
                    f"alerting.tiers.{tier.name}: false")
        return self


def min_events(slo: model.Slo, tier: Tier, floor: int) -> int:
    """Events a tier's long window must hold before it may fire.

    At least the service's `min_events`, and enough that one bad event alone cannot trip the
    tier: with N events one failure is an error ratio of 1/N, so N must reach
    1 / (factor × budget). A quiet service then relies on its slower tiers, whose longer
    windows gather enough events, instead of paging on a single failed request.
    """
    own = slo.min_events if slo.min_events is not None else floor
    return max(own, math.ceil(1.0 / (tier.factor(slo.window) * slo.budget) - 1e-9))


class PrometheusSpec(_Strict):
    """Facts about the Prometheus that evaluates the rules, used to refuse SLOs it cannot
    compute: its rule evaluation interval and, when declared, its retention."""

    evaluation_interval: Duration = Field(
        DEFAULT_EVALUATION_INTERVAL, description="Prometheus' rule evaluation interval.",
        json_schema_extra={"default": "1m"})
    retention: Duration | None = Field(None, description=(
        "Prometheus' retention; an SLO window longer than it is refused."))


def check_against_prometheus(slo: SloSpec, where: str, prom: PrometheusSpec) -> str | None:
    """A problem with `slo` on this Prometheus (message naming `where`), or None."""
    if prom.retention is not None and slo.window > prom.retention:
        return (f"{where}.window: {units.prometheus_duration(slo.window)} is longer than the "
                f"declared retention {units.prometheus_duration(prom.retention)} "
                "(defaults.prometheus.retention); the budget would be computed over the data "
                "kept, not over the window")
    if slo.raw_window < 2 * prom.evaluation_interval:
        return (f"{where}.time_scale: the raw rate window becomes "
                f"{units.prometheus_duration(slo.raw_window)}, shorter than two rule "
                f"evaluations ({units.prometheus_duration(prom.evaluation_interval)} each, "
                "defaults.prometheus.evaluation_interval); lower the scale or declare the "
                "interval Prometheus really uses")
    spent_in = slo.budget * slo.window
    if spent_in < prom.evaluation_interval:
        return (f"{where}.objective: at 100% errors the whole budget "
                f"({slo.budget:.6g} of {units.prometheus_duration(slo.window)}) is spent in "
                f"{units.prometheus_duration(max(spent_in, 0.001))}, less than one rule "
                f"evaluation ({units.prometheus_duration(prom.evaluation_interval)}); no "
                "alert could fire before it is gone")
    return None


def latency_problem(threshold: float, buckets: list[float] | None) -> str | None:
    """Why a latency threshold cannot be read exactly from the declared buckets, or None."""
    if buckets is None:
        return None
    if any(math.isclose(threshold, b, rel_tol=1e-9) for b in buckets):
        return None
    below = max((b for b in buckets if b < threshold), default=None)
    above = min((b for b in buckets if b > threshold), default=None)
    near = " or ".join(units.humanize_duration(b) for b in (below, above) if b is not None)
    return (f"{units.humanize_duration(threshold)} is not a bucket boundary of the histogram "
            f"(declared buckets: {', '.join(map(units.format_number, buckets))}), so the "
            f"share of requests within it cannot be computed exactly; use {near}, or add "
            "the boundary to the histogram")


def le_spellings(seconds: float) -> list[str]:
    """Every way client libraries and Prometheus write the `le` label of one boundary.

    The Go client writes ``1`` and ``1e+06``, the Python client ``1.0`` and ``1000000.0``, and
    Prometheus 3 normalises classic histogram labels to the float form (``1.0``); a rule
    matching only one spelling silently reads nothing from the others.
    """
    spellings = {repr(float(seconds)), units.format_number(seconds), _go_float(seconds)}
    if float(seconds).is_integer():
        spellings |= {f"{int(seconds)}", f"{int(seconds)}.0"}
    return sorted(spellings)


def _go_float(value: float) -> str:
    """Go's ``strconv.FormatFloat(v, 'g', -1, 64)``, which client_golang writes `le` with:
    the shortest digits, in exponent form below 1e-4 and from 1e6 on (``1e+06``)."""
    if value == 0:
        return "0"
    number = Decimal(repr(float(value))).normalize()
    sign, digits, _exponent = number.as_tuple()
    magnitude = number.adjusted()
    if magnitude < -4 or magnitude >= 6:
        text = "".join(map(str, digits))
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{'-' if sign else ''}{mantissa}e{'-' if magnitude < 0 else '+'}" \
            f"{abs(magnitude):02d}"
    return format(number, "f")
