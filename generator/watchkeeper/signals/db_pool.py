"""Database client pool utilisation: connections in use over the pool's maximum, per pool."""

from __future__ import annotations

from pydantic import Field
from watchkeeper import naming, promql
from watchkeeper.budgets import RatioThresholds, Strict
from watchkeeper.model import (
    Alert,
    AlertCheck,
    Chart,
    ExpectedAlert,
    Piece,
    Query,
    Recording,
    Scenario,
    Series,
    Service,
    Thresholds,
)
from watchkeeper.signals import common
from watchkeeper.signals.base import Key, Signal
from watchkeeper.signals.panels import INSTANCE, budget_chart
from watchkeeper.signals.threshold import (
    RATIO,
    Synthesis,
    ThresholdSignal,
    alert_labels,
    build_alerts,
    build_scenarios,
    steps_for,
)


class PoolBudgets(Strict):
    """Budgets of the database client connection pool."""

    utilization: RatioThresholds | None = Field(
        None, description="Connections in use over the pool's maximum, per instance and pool.")

    def resolve(self, default_for: float) -> Thresholds | None:
        return self.utilization.resolve(default_for) if self.utilization else None


KEY = Key("database", "pool", PoolBudgets, "Budgets of the client connection pool.")
ALERT = "DbPoolUtilizationHigh"
UNLIMITED = "DbPoolUnlimited"
METRICS = {"pool_in_use": "go_sql_in_use_connections", "pool_max": "go_sql_max_open_connections",
           "pool_label": "db_name", "pool_wait_seconds": "go_sql_wait_duration_seconds_total"}
POOL = "main"  # the pool label value of synthesized series
POOL_SIZE = 1000  # large enough that every test ratio is a whole number of connections
RECORD = "instance_pool:db_client_connections:utilization"


def utilization_expr(service: Service) -> str:
    """In-use over max per instance and pool; a max of 0 (Go: unlimited) yields no ratio.

    Where in-use is one state of a count by state (the profile's `pool_state`), the state
    label is ignored when matching the max.
    """
    in_use, pool_max = service.metric("pool_in_use"), service.metric("pool_max")
    sel = promql.matchers(service.selector)
    state = service.profile.pool_state
    if state is not None:
        used = promql.matchers(service.selector, **{state[0]: state[1]})
        return f"{in_use}{used}\n/ ignoring({state[0]})\n({pool_max}{sel} > 0)"
    return f"{in_use}{sel}\n/\n({pool_max}{sel} > 0)"


def _synthesize(service: Service, value: float, samples: int) -> Synthesis:
    in_use_metric, pool_max = service.metric("pool_in_use"), service.metric("pool_max")
    labels = {**common.target_labels(service), service.metric("pool_label"): POOL}
    in_use = round(value * POOL_SIZE)
    state = service.profile.pool_state
    if state is not None:
        series = (
            Series(promql.series(in_use_metric, {**labels, state[0]: state[1]}),
                   common.gauge(in_use, samples)),
            Series(promql.series(in_use_metric, {**labels, state[0]: "idle"}),
                   common.gauge(POOL_SIZE - in_use, samples)),
        )
    else:
        series = (Series(promql.series(in_use_metric, labels), common.gauge(in_use, samples)),)
    series += (Series(promql.series(pool_max, labels), common.gauge(POOL_SIZE, samples)),)
    return Synthesis(series, in_use / POOL_SIZE, {**labels, "service": service.name})


def build(service: Service) -> list[Piece]:
    budget: Thresholds | None = service.budget(KEY.path)
    if budget is None:
        return []
    sig = ThresholdSignal(
        signal="db_pool",
        alert=ALERT,
        subject="database pool utilisation",
        where=f"of pool {{{service.metric('pool_label')}}} on {{instance}}",
        unit=RATIO,
        budget=budget,
        value_expr=common.service_selector(RECORD, service),
        synthesize=lambda value, samples: _synthesize(service, value, samples),
        onset_steps=0,
        recording=common.service_selector(RECORD, service),
        upper_bound=1.0,
    )
    unlimited = _unlimited_alert(service)
    piece = Piece(group="database", recordings=[
        Recording(RECORD, utilization_expr(service), {"service": service.name})])
    piece.alerts.extend(build_alerts(sig, service))
    piece.alerts.append(unlimited)
    piece.scenarios.extend(build_scenarios(sig, service, common.test_step(service)))
    piece.scenarios.extend(_unlimited_scenarios(service, unlimited))
    return [piece]


def _unlimited_alert(service: Service) -> Alert:
    """A pool without a maximum (Go: SetMaxOpenConns never called, max = 0) has no
    utilisation, so its budget cannot fire: say so rather than stay silently quiet."""
    pool_max, pool = service.metric("pool_max"), service.metric("pool_label")
    return Alert(
        name=UNLIMITED,
        expr=f"{pool_max}{promql.matchers(service.selector)} == 0",
        for_=service.for_,
        labels=alert_labels(service, "db_pool", "warning"),
        annotations={
            "summary": f"database pool {{{{ $labels.{pool} }}}} of {service.name} on "
                       "{{ $labels.instance }} has no maximum",
            "description": f"Pool {{{{ $labels.{pool} }}}} of {service.name} on "
                           "{{ $labels.instance }} allows unlimited connections, so its "
                           "utilisation budget cannot be judged. Set a maximum (Go: "
                           "db.SetMaxOpenConns) or remove the budget.",
        },
        keep_firing_for=service.keep_firing_for,
    )


def _unlimited_scenarios(service: Service, alert: Alert) -> list[Scenario]:
    step = common.test_step(service)
    fire_at = steps_for(service.for_, step) * step
    samples = round(fire_at / step) + 3
    pool = service.metric("pool_label")
    labels = {**common.target_labels(service), pool: POOL}
    series = (Series(promql.series(service.metric("pool_in_use"), labels),
                     common.gauge(5, samples)),
              Series(promql.series(service.metric("pool_max"), labels), common.gauge(0, samples)))
    rendered = {key: value.replace(f"{{{{ $labels.{pool} }}}}", POOL)
                .replace("{{ $labels.instance }}", common.INSTANCE)
                for key, value in alert.annotations.items()}
    expected = ExpectedAlert({**labels, **alert.labels}, rendered)
    pending = (AlertCheck(fire_at - step, UNLIMITED),) if fire_at else ()
    return [Scenario(f"{UNLIMITED} fires for a pool without a maximum", series,
                     (*pending, AlertCheck(fire_at, UNLIMITED, (expected,)),
                      AlertCheck(fire_at, ALERT)))]


def charts(service: Service) -> list[Chart]:
    budget: Thresholds | None = service.budget(KEY.path)
    if budget is None:
        return []
    expr = common.service_selector(RECORD, service, instance=INSTANCE)
    pool = service.metric("pool_label")
    return [budget_chart(
        naming.DATABASE, 1, "Connection pool utilisation", RATIO,
        "Connections in use over the pool maximum, per instance and pool (a pool without "
        f"maximum has no line and raises {UNLIMITED}). ",
        (Query(expr, f"{{{{instance}}}} {{{{{pool}}}}}"),), budget, ALERT,
        f"max({common.service_selector(RECORD, service)})", alerts=(UNLIMITED,)),
        _waits(service)]


def _waits(service: Service) -> Chart:
    """Time spent waiting for a free connection: the pool is too small before it is full."""
    metric = service.metric("pool_wait_seconds") + service.profile.pool_wait_suffix
    pool = service.metric("pool_label")
    sel = promql.matchers(service.selector, instance=INSTANCE)
    expr = f"sum by (instance, {pool}) (rate({metric}{sel}[{common.window(service)}]))"
    return Chart(naming.DATABASE, 2, "Connection pool wait time", "s",
                 "Seconds spent waiting for a free connection, per second, per instance and "
                 "pool. Rising waits mean the pool is too small even before utilisation hits "
                 "its budget.", (Query(expr, f"{{{{instance}}}} {{{{{pool}}}}}"),))


def exposed(service: Service) -> list[str]:
    if service.budget(KEY.path) is None:
        return []
    return [service.metric("pool_in_use"), service.metric("pool_max")]


SIGNAL = Signal("db_pool", (KEY,), build, charts, METRICS, exposed)
