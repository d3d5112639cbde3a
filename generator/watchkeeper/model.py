"""Plain data, no I/O: the resolved spec builders read, and what they build from it.

Two halves. The *resolved model* (``Spec``, ``Service``, ``Profile`` and the budget
types) is what :func:`watchkeeper.spec.resolve` makes of a validated spec: every default
applied, every value concrete, no pydantic types. The *output model* (``Recording``,
``Alert``, ``Scenario``, ``Piece``, ``Chart``) is what signal modules build from it;
``rules.py``, ``rule_tests.py`` and ``dashboards/`` turn those into files.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from watchkeeper.slo_spec import Tier

# --- Resolved model ----------------------------------------------------------------------


@dataclass(frozen=True)
class Thresholds:
    """One budget: up to two severities, its resolved `for`, and which side is worse."""

    warning: float | None
    critical: float | None
    for_: float
    lower_is_worse: bool = False

    def severities(self) -> list[tuple[str, float]]:
        """The declared (severity, value) pairs, warning first."""
        return [(sev, value) for sev, value in (("warning", self.warning),
                                                 ("critical", self.critical))
                if value is not None]


@dataclass(frozen=True)
class Leak:
    window: float
    horizon: float
    for_: float


@dataclass(frozen=True)
class CountThresholds(Thresholds):
    leak: Leak | None = None


@dataclass(frozen=True)
class Quantile:
    """The budget of one quantile of a histogram: ``p99`` is 0.99."""

    name: str
    q: float
    budget: Thresholds


Quantiles = tuple[Quantile, ...]


@dataclass(frozen=True)
class Profile:
    """Everything that differs between languages, so no builder asks which language it is.

    `metrics` maps each metric key a signal reads to its name (after the spec's `metrics:`
    overrides); the other fields describe shapes that differ, not just names.
    """

    language: str
    metrics: Mapping[str, str]
    # Label selecting in-use connections when the pool count is split by state (python:
    # one gauge with state="used"/"idle"); None when in-use is a gauge of its own (go).
    pool_state: tuple[str, str] | None = None
    # Suffix of the series holding seconds waited for a connection: Go exports a counter,
    # the Python exporter a histogram (whose `_sum` is that counter).
    pool_wait_suffix: str = ""
    # How GC pauses are exported: "summary" (Go: compare the mean pause) or "histogram"
    # (Python: compare the p99 pause).
    gc_pause: str = "summary"
    # Spec keys this language cannot have, each with the message saying what to use.
    unsupported: Mapping[str, str] = field(default_factory=dict)

    def metric(self, key: str) -> str:
        return self.metrics[key]


@dataclass(frozen=True)
class Matcher:
    """One label matcher of a selector: ``job=~"a|b"`` is Matcher("job", "=~", "a|b")."""

    name: str
    op: str  # "=", "!=", "=~" or "!~"
    value: str


@dataclass(frozen=True)
class Selector:
    """The matchers selecting a service's series, and label values satisfying all of them
    (`example`: what synthesized test series carry; labels only excluded are left out)."""

    matchers: tuple[Matcher, ...]
    example: Mapping[str, str]

    def equalities(self) -> dict[str, str]:
        """The labels `absent()` copies into its result: those matched with `=`."""
        return {m.name: m.value for m in self.matchers if m.op == "="}


@dataclass(frozen=True)
class Derived:
    """What builders use that is drawn from every budget of a service, not from the ones
    they read: the promtool steps (`signals.common.test_step`, `leak_test_step`) and the
    metrics a healthy instance always exposes (`signals.absent.always_exposed`)."""

    test_step: float
    leak_test_step: float
    exposed: tuple[str, ...] | None  # None while it is being drawn


@dataclass(frozen=True)
class Service:
    """One service with every default applied; builders read only this."""

    name: str
    selector: Selector
    profile: Profile
    labels: dict[str, str]
    runbook_url: str | None
    grafana_url: str | None
    rate_window: float
    for_: float
    keep_firing_for: float
    min_events: int | None  # the spec's; None: the default of signals.common.min_events
    # Settings of each declared section (`http: {histogram: ...}`), by section then key.
    settings: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # Every declared budget, by spec path ("http.latency", "caches"), already resolved
    # (see each signal module for the type it reads).
    budgets: Mapping[str, Any] = field(default_factory=dict)
    # What is drawn from every budget, already drawn: set on one signal's view of the
    # service (`parts.Seen.view`), whose `budgets` hold only what that signal declares;
    # None: drawn from `budgets` by whoever needs it.
    derived: Derived | None = None

    @property
    def language(self) -> str:
        return self.profile.language

    def metric(self, key: str) -> str:
        return self.profile.metrics[key]

    def budget(self, path: str) -> Any:
        """The resolved budget at a spec path, or None when the service does not set it."""
        return self.budgets.get(path)

    def setting(self, section: str, key: str) -> str:
        return self.settings[section][key]


@dataclass(frozen=True)
class SloLatency:
    """Good events are requests served within `latency` seconds (a bucket boundary)."""

    latency: float


@dataclass(frozen=True)
class SloEvents:
    """PromQL of bad and of all events per second, each with a ``{{window}}`` placeholder."""

    errors: str
    total: str


@dataclass(frozen=True)
class SloErrorRatio:
    """PromQL that already is the error ratio over ``{{window}}``."""

    error_ratio: str


# What a good event is: "availability" (non-5xx responses of the HTTP histogram) or one of
# the indicator types above.
SloIndicator = str | SloLatency | SloEvents | SloErrorRatio


@dataclass(frozen=True)
class SloExtras:
    """Extra labels and annotations of one SLO's alerts (all, or one severity's)."""

    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SloAlerting:
    """An SLO's alert policy: its alert name, the burn tiers that alert (each with its
    resolved `for`, in the table's order), and extra labels/annotations."""

    name: str
    tiers: tuple[tuple[Tier, float], ...]
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    page: SloExtras = SloExtras()    # critical alerts only
    ticket: SloExtras = SloExtras()  # warning alerts only


@dataclass(frozen=True)
class Slo:
    """One resolved SLO (see :mod:`watchkeeper.slo_spec` for the input and its checks)."""

    name: str
    objective: float
    window: float  # seconds
    indicator: SloIndicator
    description: str | None
    labels: Mapping[str, str]
    min_events: int | None
    alerting: SloAlerting | None  # None: recordings and panels only (`alerting: false`)
    time_scale: float = 1  # divides every window of the tier table and the raw window

    @property
    def budget(self) -> float:
        return 1.0 - self.objective

    @property
    def signal(self) -> str:
        """The `signal` label of its alerts: availability, latency, or slo (any query)."""
        if self.indicator == "availability":
            return "availability"
        return "latency" if isinstance(self.indicator, SloLatency) else "slo"

    def tiers(self) -> list[tuple[Tier, float]]:
        """The tiers that alert (windows already divided by `time_scale`), each with its
        `for`; none when alerting is off."""
        return [] if self.alerting is None else list(self.alerting.tiers)

    @property
    def raw_window(self) -> float:
        """The one window read from raw series: 5m, divided by `time_scale`."""
        from watchkeeper.slo_spec import RAW_WINDOW

        return RAW_WINDOW / self.time_scale

    def windows(self) -> list[float]:
        from watchkeeper.slo_spec import windows

        return windows(self.window, self.time_scale)

    def reference(self) -> Slo:
        """This SLO at `time_scale` 1: its window, tier windows and every `for` stretched by
        its scale (the time the promtool scenario model works in); factors and minimum events
        are the same."""
        if self.time_scale == 1:
            return self
        k = self.time_scale
        alerting = self.alerting
        if alerting is not None:
            alerting = replace(alerting, tiers=tuple(
                (replace(tier, long=tier.long * k, short=tier.short * k,
                         default_for=tier.default_for * k), for_ * k)
                for tier, for_ in alerting.tiers))
        return replace(self, window=self.window * k, alerting=alerting, time_scale=1)


@dataclass(frozen=True)
class EmailReceiver:
    to: str
    from_: str
    smarthost: str
    require_tls: bool


@dataclass(frozen=True)
class Receiver:
    """Where one severity's notifications go: a webhook, an email address, or both."""

    webhook_url: str | None
    email: EmailReceiver | None


@dataclass(frozen=True)
class Receivers:
    page: Receiver    # critical alerts
    ticket: Receiver  # warnings


@dataclass(frozen=True)
class Routing:
    """Alertmanager routing shared by every service (``defaults.alertmanager``), seconds."""

    receivers: Receivers | None  # None: `receivers: none`, rules only
    group_wait: float
    group_interval: float
    repeat_interval: float


class StoredServices(Sequence[Service]):
    """Services kept out of memory (`load.py` keeps a large spec's on disk), read back when
    indexed; their names and whether any declares SLOs are known without reading any
    back: all that the files drawn from every service (routing, the fleet view) need."""

    names: Collection[str]  # in spec order (`load.py` keeps them on disk too)
    any_slos: bool


def service_names(services: Sequence[Service]) -> Collection[str]:
    """Every service's name, in spec order (stored services are not read back for it)."""
    if isinstance(services, StoredServices):
        return services.names
    return [service.name for service in services]


def any_slos(services: Sequence[Service]) -> bool:
    """Whether any service declares an SLO (stored services are not read back for it)."""
    if isinstance(services, StoredServices):
        return services.any_slos
    return any(service.budget("slos") for service in services)


@dataclass(frozen=True)
class Spec:
    """A whole resolved spec: the services, and the Alertmanager routing they share."""

    services: Sequence[Service]  # a tuple, or `StoredServices` for a large spec
    alertmanager: Routing


# --- Output model: rules and promtool scenarios ------------------------------------------


@dataclass(frozen=True)
class Recording:
    record: str
    expr: str
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Alert:
    """One alerting rule; the same `name` is used for every severity of one budget."""

    name: str
    expr: str
    for_: float
    labels: dict[str, str]
    annotations: dict[str, str]
    keep_firing_for: float = 0.0


@dataclass(frozen=True)
class Series:
    """One input series of a promtool test, in promtool's expanding notation."""

    selector: str
    values: str


@dataclass(frozen=True)
class ExpectedAlert:
    labels: dict[str, str]
    annotations: dict[str, str]


@dataclass(frozen=True)
class AlertCheck:
    """At `eval_time` (seconds), exactly `expected` alerts named `alert` are firing."""

    eval_time: float
    alert: str
    expected: tuple[ExpectedAlert, ...] = ()


@dataclass(frozen=True)
class ExprCheck:
    """At `eval_time`, `expr` returns exactly these samples (labels, value)."""

    eval_time: float
    expr: str
    samples: tuple[tuple[dict[str, str], float], ...]


@dataclass(frozen=True)
class Scenario:
    """One promtool test group: input series and what must (not) fire when."""

    name: str
    series: tuple[Series, ...]
    alert_checks: tuple[AlertCheck, ...] = ()
    expr_checks: tuple[ExprCheck, ...] = ()
    interval: float | None = None  # seconds between input samples; default: the file's step


@dataclass
class Piece:
    """What one signal contributes to one rule group of one service."""

    group: str
    recordings: list[Recording] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    scenarios: list[Scenario] = field(default_factory=list)
    # promtool evaluation step (seconds) the scenarios were built for; None: the service's
    # `signals.common.test_step`. Scenarios spanning hours (leaks) need far fewer steps.
    test_step: float | None = None
    # Cases on an event count other signals may share (`signals.threshold.Joint`), their
    # scenarios built by the registry (`signals.joint_scenarios`) beside the others'.
    joints: list = field(default_factory=list)
    # Sections (`group` of other pieces of the same service) whose recordings this one's
    # rules read: their rule files are listed in this group's tests too.
    needs: tuple[str, ...] = ()
    # The group's own evaluation interval (seconds, written as the group's `interval:`);
    # None: Prometheus' global one. promtool's tests evaluate every group at the test step
    # whatever this says.
    interval: float | None = None


# --- Output model: dashboard charts ------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """A dashboard section; its panels take ids from `base` up (see naming.panel_id)."""

    key: str
    title: str
    base: int


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class Chart:
    """One panel a signal asks for: where, what it queries, and the budget it draws.

    `slot` is the panel's stable place within its row (its id is ``row.base + slot``), so
    adding a signal never renumbers another's panels. `alerts` (with `match`, labels an
    alert must carry) are the alerts this panel explains: their `dashboard_url` links here.
    """

    row: Row | None
    slot: int
    title: str
    unit: str
    description: str
    queries: tuple[Query, ...]
    budget: Thresholds | None = None
    stat: str | None = None  # one-value summary for the overview (worst instance)
    alerts: tuple[str, ...] = ()
    match: tuple[tuple[str, str], ...] = ()
    kind: str = "timeseries"  # or "heatmap"
