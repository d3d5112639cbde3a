"""Database client pool utilisation: connections in use over the pool's maximum, per pool."""

from __future__ import annotations

from watchkeeper import promql
from watchkeeper.dashboards import ids
from watchkeeper.model import Piece, Recording, Series
from watchkeeper.signals import common
from watchkeeper.signals.threshold import (
    RATIO,
    Synthesis,
    ThresholdSignal,
    build_alerts,
    build_scenarios,
)
from watchkeeper.spec import Service

POOL = "main"  # the pool label value of synthesized series
POOL_SIZE = 1000  # large enough that every test ratio is a whole number of connections
RECORD = "instance_pool:db_client_connections:utilization"


def utilization_expr(service: Service) -> str:
    """In-use over max per instance and pool; a max of 0 (Go: unlimited) yields no ratio.

    Go's database/sql exports in-use and max as separate gauges; the Python exporter
    exports counts by `state` (used/idle), so `state` is ignored when matching the max.
    """
    m = service.metrics
    sel = promql.matchers(service.selector)
    if service.language == "python":
        used = promql.matchers(service.selector, state="used")
        return f"{m.pool_in_use}{used}\n/ ignoring(state)\n({m.pool_max}{sel} > 0)"
    return f"{m.pool_in_use}{sel}\n/\n({m.pool_max}{sel} > 0)"


def _synthesize(service: Service, value: float, samples: int) -> Synthesis:
    m = service.metrics
    labels = {**common.target_labels(service), m.pool_label: POOL}
    in_use = round(value * POOL_SIZE)
    if service.language == "python":
        series = (
            Series(promql.series(m.pool_in_use, {**labels, "state": "used"}),
                   common.gauge(in_use, samples)),
            Series(promql.series(m.pool_in_use, {**labels, "state": "idle"}),
                   common.gauge(POOL_SIZE - in_use, samples)),
        )
    else:
        series = (Series(promql.series(m.pool_in_use, labels), common.gauge(in_use, samples)),)
    series += (Series(promql.series(m.pool_max, labels), common.gauge(POOL_SIZE, samples)),)
    return Synthesis(series, in_use / POOL_SIZE, {**labels, "service": service.name})


def build(service: Service) -> list[Piece]:
    db = service.database
    if db is None or db.pool is None or db.pool.utilization is None:
        return []
    sig = ThresholdSignal(
        signal="db_pool",
        alert="DbPoolUtilizationHigh",
        subject="database pool utilisation",
        where=f"of pool {{{service.metrics.pool_label}}} on {{instance}}",
        unit=RATIO,
        budget=db.pool.utilization,
        value_expr=common.service_selector(RECORD, service),
        synthesize=lambda value, samples: _synthesize(service, value, samples),
        onset_steps=0,
        recording=common.service_selector(RECORD, service),
        upper_bound=1.0,
        panel=ids.DB_POOL,
    )
    piece = Piece(group="database", recordings=[
        Recording(RECORD, utilization_expr(service), {"service": service.name})])
    piece.alerts.extend(build_alerts(sig, service))
    piece.scenarios.extend(build_scenarios(sig, service, common.test_step(service)))
    return [piece]
