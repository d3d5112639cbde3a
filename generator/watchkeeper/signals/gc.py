"""Garbage-collection pauses per instance against a budget.

Go's `go_gc_duration_seconds` is a summary whose quantiles are not windowed and cannot be
aggregated, so the budget is compared with the mean pause per collection over the rate
window (rate of _sum over rate of _count), which is exact. Python's
`python_gc_pause_seconds` is a histogram, so the budget is compared with its p99 over the
window, which catches rare long generation-2 collections that a mean would hide.
"""

from __future__ import annotations

from functools import partial

from watchkeeper import promql
from watchkeeper.dashboards import ids
from watchkeeper.model import Piece, Recording, Series
from watchkeeper.signals import common
from watchkeeper.signals.threshold import (
    DURATION,
    Synthesis,
    ThresholdSignal,
    build_alerts,
    build_scenarios,
)
from watchkeeper.spec import Service

GC_CYCLES_PER_STEP = 10
PYTHON_QUANTILE = ("p99", 0.99)


def _go_record(service: Service) -> Recording:
    m, w = service.metrics.gc_pause, common.window(service)
    sel = promql.matchers(service.selector)
    return Recording(
        record=f"instance:{m}:mean_rate{w}",
        expr=f"rate({m}_sum{sel}[{w}])\n/\nrate({m}_count{sel}[{w}])",
        labels={"service": service.name},
    )


def _go_synthesis(service: Service, value: float, samples: int) -> Synthesis:
    m = service.metrics.gc_pause
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


def _python_synthesis(service: Service, value: float, samples: int) -> Synthesis:
    labels = {**common.target_labels(service), "generation": "2"}
    result = {**common.target_labels(service), "service": service.name}
    _, q = PYTHON_QUANTILE
    return common.histogram_synthesis(service.metrics.gc_pause, labels, q, value,
                                      common.SAMPLES_PER_STEP, samples, result)


def build(service: Service) -> list[Piece]:
    if service.runtime is None or service.runtime.gc_pause is None:
        return []
    m, w = service.metrics.gc_pause, common.window(service)
    if service.language == "go":
        recordings = [_go_record(service)]
        record, subject = recordings[0].record, "mean GC pause"
        synthesize = partial(_go_synthesis, service)
    else:
        name, _ = PYTHON_QUANTILE
        recordings = common.quantile_recordings(service, m, [PYTHON_QUANTILE], level="instance",
                                                aggregate="sum without (generation)")
        record, subject = recordings[-1].record, f"{name} GC pause"
        synthesize = partial(_python_synthesis, service)
    selector = common.service_selector(record, service)
    sig = ThresholdSignal(
        signal="gc",
        alert="GcPauseHigh",
        subject=subject,
        where="of {service} on {instance}",
        unit=DURATION,
        budget=service.runtime.gc_pause,
        value_expr=selector,
        synthesize=synthesize,
        onset_steps=1,
        recording=selector,
        over=f" over the last {w}",
        panel=ids.RUNTIME["gc_pause"],
    )
    piece = Piece(group="runtime", recordings=recordings)
    piece.alerts.extend(build_alerts(sig, service))
    piece.scenarios.extend(build_scenarios(sig, service, common.test_step(service)))
    return [piece]


def record(service: Service) -> str:
    """The recording the GC budget is compared with (mean pause for Go, p99 for Python)."""
    if service.language == "go":
        return _go_record(service).record
    m = service.metrics.gc_pause
    return common.quantile_recordings(service, m, [PYTHON_QUANTILE], level="instance")[-1].record
