"""Garbage-collection pauses per instance against a budget.

Go's `go_gc_duration_seconds` is a summary whose quantiles are not windowed and cannot be
aggregated, so the budget is compared with the mean pause per collection over the rate
window (rate of _sum over rate of _count), which is exact. Python's
`python_gc_pause_seconds` is a histogram, so the budget is compared with its p99 over the
window, which catches rare long generation-2 collections that a mean would hide. Which
of the two a service has is its profile's `gc_pause`.
"""

from __future__ import annotations

from functools import partial

from watchkeeper import naming, promql
from watchkeeper.budgets import DurationThresholds
from watchkeeper.model import Chart, Piece, Query, Recording, Series, Service, Thresholds
from watchkeeper.signals import common
from watchkeeper.signals.base import Key, Signal
from watchkeeper.signals.panels import INSTANCE, budget_chart
from watchkeeper.signals.threshold import (
    DURATION,
    Synthesis,
    ThresholdSignal,
    build_alerts,
    build_scenarios,
)

KEY = Key("runtime", "gc_pause", DurationThresholds,
          "Budget of GC pauses per instance: the mean pause (go) or the p99 pause (python) "
          "over the rate window.")
ALERT = "GcPauseHigh"
METRICS = {"gc_pause": "go_gc_duration_seconds"}
GC_CYCLES_PER_STEP = 10
HISTOGRAM_QUANTILE = ("p99", 0.99)


def _mean_record(service: Service) -> Recording:
    m, w = service.metric("gc_pause"), common.window(service)
    sel = promql.matchers(service.selector)
    return Recording(
        record=f"instance:{m}:mean_rate{w}",
        expr=f"rate({m}_sum{sel}[{w}])\n/\nrate({m}_count{sel}[{w}])",
        labels={"service": service.name},
    )


def _quantile_records(service: Service) -> list[Recording]:
    return common.quantile_recordings(service, service.metric("gc_pause"), [HISTOGRAM_QUANTILE],
                                      level="instance", aggregate="sum without (generation)")


def _summary_synthesis(service: Service, value: float, samples: int) -> Synthesis:
    m = service.metric("gc_pause")
    labels = common.target_labels(service)
    return Synthesis(
        series=(
            Series(promql.series(f"{m}_sum", labels),
                   common.counter(round(value * GC_CYCLES_PER_STEP, 9), samples)),
            Series(promql.series(f"{m}_count", labels),
                   common.counter(GC_CYCLES_PER_STEP, samples)),
        ),
        value=round(value * GC_CYCLES_PER_STEP, 9) / GC_CYCLES_PER_STEP,
        labels={**labels, "service": service.name},
    )


def _histogram_synthesis(service: Service, value: float, samples: int) -> Synthesis:
    labels = {**common.target_labels(service), "generation": "2"}
    result = {**common.target_labels(service), "service": service.name}
    _, q = HISTOGRAM_QUANTILE
    return common.histogram_synthesis(service.metric("gc_pause"), labels, q, value,
                                      common.SAMPLES_PER_STEP, samples, result)


def _shape(service: Service):
    """(recordings, the one compared, subject, synthesizer) for the service's GC metric."""
    if service.profile.gc_pause == "summary":
        recordings = [_mean_record(service)]
        return recordings, recordings[0].record, "mean GC pause", partial(
            _summary_synthesis, service)
    recordings = _quantile_records(service)
    return recordings, recordings[-1].record, f"{HISTOGRAM_QUANTILE[0]} GC pause", partial(
        _histogram_synthesis, service)


def build(service: Service) -> list[Piece]:
    budget: Thresholds | None = service.budget(KEY.path)
    if budget is None:
        return []
    recordings, record, subject, synthesize = _shape(service)
    selector = common.service_selector(record, service)
    sig = ThresholdSignal(
        signal="gc",
        alert=ALERT,
        subject=subject,
        where="of {service} on {instance}",
        unit=DURATION,
        budget=budget,
        value_expr=selector,
        synthesize=synthesize,
        onset_steps=1,
        recording=selector,
        over=f" over the last {common.window(service)}",
    )
    piece = Piece(group="runtime", recordings=recordings)
    piece.alerts.extend(build_alerts(sig, service))
    piece.scenarios.extend(build_scenarios(sig, service, common.test_step(service)))
    return [piece]


def charts(service: Service) -> list[Chart]:
    budget: Thresholds | None = service.budget(KEY.path)
    if budget is None:
        return []
    _, record, _, _ = _shape(service)
    return [budget_chart(
        naming.RUNTIME, 5, "GC pause", DURATION, f"{record} per instance. ",
        (Query(common.service_selector(record, service, instance=INSTANCE), "{{instance}}"),),
        budget, ALERT, f"max({common.service_selector(record, service)})")]


def exposed(service: Service) -> list[str]:
    """Go's summary and the Python collector's histogram (children created at start-up)
    both have a `_count` from the first scrape, before any collection."""
    if service.budget(KEY.path) is None:
        return []
    return [f"{service.metric('gc_pause')}_count"]


SIGNAL = Signal("gc", (KEY,), build, charts, METRICS, exposed)
