"""Per-instance runtime gauges against budgets: memory, goroutines, threads, asyncio tasks.

They share one shape (a gauge per instance compared with a budget), so one module builds
them from a small table instead of four near-copies.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from watchkeeper import promql
from watchkeeper.dashboards import ids
from watchkeeper.model import Piece, Series
from watchkeeper.signals import common
from watchkeeper.signals.threshold import (
    BYTES,
    COUNT,
    Synthesis,
    ThresholdSignal,
    Unit,
    build_alerts,
    build_scenarios,
)
from watchkeeper.spec import Service


@dataclass(frozen=True)
class Gauge:
    key: str  # attribute of RuntimeSection, and of MetricNames for the metric
    signal: str
    alert: str
    subject: str
    unit: Unit


GAUGES = (
    Gauge("memory", "memory", "MemoryHigh", "resident memory", BYTES),
    Gauge("goroutines", "goroutines", "GoroutinesHigh", "goroutine count", COUNT),
    Gauge("threads", "threads", "ThreadsHigh", "OS thread count", COUNT),
    Gauge("tasks", "tasks", "AsyncioTasksHigh", "asyncio task count", COUNT),
)
METRIC_KEY = {"memory": "resident_memory"}


def metric_of(service: Service, key: str) -> str:
    return getattr(service.metrics, METRIC_KEY.get(key, key))


def gauge_synthesis(service: Service, metric: str, value: float, samples: int) -> Synthesis:
    labels = common.target_labels(service)
    return Synthesis(
        series=(Series(promql.series(metric, labels), common.gauge(value, samples)),),
        value=value,
        labels=labels,
    )


def gauge_signal(service: Service, gauge: Gauge) -> ThresholdSignal:
    """The threshold signal of one declared runtime gauge."""
    assert service.runtime is not None
    metric = metric_of(service, gauge.key)
    return ThresholdSignal(
        signal=gauge.signal,
        alert=gauge.alert,
        subject=gauge.subject,
        where="of {service} on {instance}",
        unit=gauge.unit,
        budget=getattr(service.runtime, gauge.key),
        value_expr=metric + promql.matchers(service.selector),
        synthesize=partial(gauge_synthesis, service, metric),
        onset_steps=0,
        panel=ids.RUNTIME[gauge.key],
    )


def build(service: Service) -> list[Piece]:
    runtime = service.runtime
    if runtime is None:
        return []
    step = common.test_step(service)
    piece = Piece(group="runtime")
    for gauge in GAUGES:
        if getattr(runtime, gauge.key) is None:
            continue
        sig = gauge_signal(service, gauge)
        piece.alerts.extend(build_alerts(sig, service))
        piece.scenarios.extend(build_scenarios(sig, service, step))
    return [piece] if piece.alerts else []
