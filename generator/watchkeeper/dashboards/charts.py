"""What each service's dashboard shows, as plain data: one `Chart` per panel, by section.

Every query reads the recording rules the alerts read (names come from the signal modules,
so they cannot drift), and every budgeted chart carries the budget itself so the panel can
draw it and the overview can colour a stat by it. No grafanalib here: `build.py` renders.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from watchkeeper import promql
from watchkeeper.dashboards import ids
from watchkeeper.signals import cache, common, db_pool, errors, gc, leak
from watchkeeper.signals.runtime import GAUGES, metric_of
from watchkeeper.signals.threshold import BYTES, COUNT, DURATION, RATIO, Unit
from watchkeeper.spec import LatencyBudgets, Service, _Thresholds
from watchkeeper.units import prometheus_duration

INSTANCE = "=~$instance"  # matcher value used by per-instance panels
UNITS: dict[Unit, str] = {DURATION: "s", RATIO: "percentunit", BYTES: "bytes", COUNT: "short"}


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class Chart:
    """One panel: queries, unit, and the budget it is judged against (if any)."""

    id: int
    title: str
    unit: str
    description: str
    queries: tuple[Query, ...]
    budget: _Thresholds | None = None
    render: Unit | None = None  # how budget values read in the description
    stat: str | None = None  # one-value summary for the overview (worst instance)


@dataclass
class Section:
    key: str
    title: str
    charts: list[Chart] = field(default_factory=list)


def budget_text(budget: _Thresholds, render: Unit, alert: str) -> str:
    """Why the lines are where they are: the budget, in the spec's own terms."""
    side = "below" if budget.lower_is_worse else "above"
    parts = [f"{sev} {side} {render.render(value)}"
             for sev in ("warning", "critical") if (value := getattr(budget, sev)) is not None]
    return f"Budget: {', '.join(parts)} (alert {alert}). Lines: yellow warning, red critical."


def _svc(service: Service, record: str, **extra: str) -> str:
    return common.service_selector(record, service, **extra)


def _latency(service: Service, histogram: str, budgets: LatencyBudgets, what: str,
             alert_prefix: str, panel_id) -> list[Chart]:
    charts = []
    for name, budget in budgets.items():
        expr = _svc(service, common.quantile_record(service, histogram, name))
        charts.append(Chart(
            panel_id(name), f"{what} latency {name}", UNITS[DURATION],
            f"{name} of {histogram} over {common.window(service)}, all instances. "
            + budget_text(budget, DURATION, f"{alert_prefix}{name.upper()}High"),
            (Query(expr, name),), budget, DURATION, expr))
    return charts


def http_section(service: Service) -> Section | None:
    http = service.http
    if http is None or (http.latency is None and http.error_ratio is None):
        return None
    section = Section("http", "HTTP")
    rate = common.rate_selector(service, f"{http.histogram}_count")
    section.charts.append(Chart(ids.HTTP_REQUESTS, "Request rate", "reqps",
                                "Requests per second, all instances.",
                                (Query(rate, "requests/s"),)))
    if http.error_ratio:
        expr = _svc(service, errors.error_ratio_record(service))
        section.charts.append(Chart(
            ids.HTTP_ERRORS, "Error ratio (5xx)", UNITS[RATIO],
            "Share of 5xx responses. " + budget_text(http.error_ratio, RATIO,
                                                      "HttpErrorRatioHigh"),
            (Query(expr, "5xx ratio"),), http.error_ratio, RATIO, expr))
    if http.latency:
        section.charts.extend(_latency(service, http.histogram, http.latency, "HTTP",
                                       "HttpLatency", ids.http_latency))
    return section


def database_section(service: Service) -> Section | None:
    db = service.database
    if db is None or (db.latency is None and (db.pool is None or db.pool.utilization is None)):
        return None
    section = Section("database", "Database")
    if db.pool and db.pool.utilization:
        expr = _svc(service, db_pool.RECORD, instance=INSTANCE)
        pool = service.metrics.pool_label
        section.charts.append(Chart(
            ids.DB_POOL, "Connection pool utilisation", UNITS[RATIO],
            "Connections in use over the pool maximum, per instance and pool. "
            + budget_text(db.pool.utilization, RATIO, "DbPoolUtilizationHigh"),
            (Query(expr, f"{{{{instance}}}} {{{{{pool}}}}}"),), db.pool.utilization, RATIO,
            f"max({_svc(service, db_pool.RECORD)})"))
        section.charts.append(pool_waits(service))
    if db.latency:
        section.charts.extend(_latency(service, db.histogram, db.latency, "Query",
                                       "DbQueryLatency", ids.db_latency))
    return section


def pool_waits(service: Service) -> Chart:
    """Time spent waiting for a free connection: the pool is too small before it is full.

    Go's database/sql exports a counter of seconds waited; the Python exporter a histogram
    of wait times (hence its `_sum`).
    """
    m, w = service.metrics, common.window(service)
    metric = m.pool_wait_seconds if service.language == "go" else f"{m.pool_wait_seconds}_sum"
    sel = promql.matchers(service.selector, instance=INSTANCE)
    expr = f"sum by (instance, {m.pool_label}) (rate({metric}{sel}[{w}]))"
    return Chart(ids.DB_POOL_WAITS, "Connection pool wait time", "s",
                 "Seconds spent waiting for a free connection, per second, per instance and "
                 "pool. Rising waits mean the pool is too small even before utilisation hits "
                 "its budget.", (Query(expr, f"{{{{instance}}}} {{{{{m.pool_label}}}}}"),))


def caches_section(service: Service) -> Section | None:
    if not service.caches:
        return None
    section = Section("caches", "Caches")
    names, label = cache.records(service), service.metrics.cache_label
    for spec in service.caches:
        ratio = _svc(service, names["hit_ratio"], **{label: spec.name})
        section.charts.append(Chart(
            ids.cache_hit_ratio(service, spec.name), f"Cache {spec.name}: hit ratio",
            UNITS[RATIO], f"Hits over lookups of cache {spec.name}. "
            + budget_text(spec.hit_ratio, RATIO, "CacheHitRatioLow"),
            (Query(ratio, "hit ratio"),), spec.hit_ratio, RATIO, ratio))
        section.charts.append(Chart(
            ids.cache_traffic(service, spec.name), f"Cache {spec.name}: hits and misses",
            "ops", f"Hits and misses per second of cache {spec.name}.",
            tuple(Query(_svc(service, names[kind], **{label: spec.name}), kind)
                  for kind in ("hits", "misses"))))
    return section


def runtime_section(service: Service) -> Section | None:
    runtime = service.runtime
    if runtime is None:
        return None
    section = Section("runtime", "Runtime")
    sel = promql.matchers(service.selector, instance=INSTANCE)
    for gauge in GAUGES:
        budget = getattr(runtime, gauge.key)
        if budget is None:
            continue
        metric = metric_of(service, gauge.key)
        queries = [Query(metric + sel, "{{instance}}")]
        description = f"{metric} per instance. " + budget_text(budget, gauge.unit, gauge.alert)
        if getattr(budget, "leak", None) is not None:
            trend = _svc(service, leak.record(metric, budget.leak), instance=INSTANCE)
            queries.append(Query(trend, "{{instance}} predicted"))
            description += (" The predicted series is the leak trend (linear fit over the "
                            f"last {prometheus_duration(budget.leak.window)}, "
                            f"{prometheus_duration(budget.leak.horizon)} ahead).")
        section.charts.append(Chart(
            ids.RUNTIME[gauge.key], gauge.subject[0].upper() + gauge.subject[1:], UNITS[gauge.unit],
            description, tuple(queries), budget, gauge.unit,
            f"max({metric}{promql.matchers(service.selector)})"))
    if runtime.gc_pause:
        record = gc.record(service)
        section.charts.append(Chart(
            ids.RUNTIME["gc_pause"], "GC pause", UNITS[DURATION],
            f"{record} per instance. "
            + budget_text(runtime.gc_pause, DURATION, "GcPauseHigh"),
            (Query(_svc(service, record, instance=INSTANCE), "{{instance}}"),),
            runtime.gc_pause, DURATION, f"max({_svc(service, record)})"))
    return section


def slos_section(service: Service) -> Section | None:
    """Per SLO: compliance against the objective, remaining budget, burn rates, events."""
    from watchkeeper.signals import slo as slo_signal  # the signal owns its charts

    if not service.slos:
        return None
    section = Section("slos", "SLOs (error budgets)")
    section.charts.extend(slo_signal.charts(service))
    return section


SECTIONS = (http_section, database_section, caches_section, runtime_section, slos_section)


def sections(service: Service) -> list[Section]:
    """The sections the service declares, in a fixed order."""
    return [s for build in SECTIONS if (s := build(service)) is not None]


def availability(service: Service) -> Chart:
    up = service.metrics.up + promql.matchers(service.selector)
    return Chart(ids.AVAILABILITY, "Targets up", "short",
                 "Scrape targets of the service that are up (alerts ServiceDown, TargetDown, "
                 "ServiceMetricsAbsent).", (Query(f"sum({up})", "up"),))
