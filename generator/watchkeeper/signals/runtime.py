"""Per-instance runtime gauges against budgets: memory, goroutines, threads, asyncio tasks.

They share one shape (a gauge per instance compared with a budget), so one module builds
them from a small table instead of four near-copies.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import partial

from watchkeeper import naming, promql
from watchkeeper.budgets import BytesThresholds, CountThresholds
from watchkeeper.model import Chart, Piece, Query, Series, Service, Thresholds
from watchkeeper.signals import common
from watchkeeper.signals.base import Key, Signal
from watchkeeper.signals.panels import INSTANCE, budget_chart
from watchkeeper.signals.threshold import (
    BYTES,
    COUNT,
    Synthesis,
    ThresholdSignal,
    Unit,
    build_alerts,
    build_scenarios,
)
from watchkeeper.units import prometheus_duration


@dataclass(frozen=True)
class Gauge:
    key: str  # spec key under `runtime`
    metric: str  # metric key (see METRICS)
    alert: str
    leak_alert: str | None  # the leak alert of a count (see signals/leak.py)
    subject: str
    unit: Unit
    slot: int  # panel slot in the Runtime row

    @property
    def path(self) -> str:
        return f"runtime.{self.key}"


GAUGES = (
    Gauge("memory", "resident_memory", "MemoryHigh", None, "resident memory", BYTES, 1),
    Gauge("goroutines", "goroutines", "GoroutinesHigh", "GoroutineLeak", "goroutine count",
          COUNT, 2),
    Gauge("threads", "threads", "ThreadsHigh", "ThreadLeak", "OS thread count", COUNT, 3),
    Gauge("tasks", "tasks", "AsyncioTasksHigh", "AsyncioTaskLeak", "asyncio task count",
          COUNT, 4),
)
KEYS = (
    Key("runtime", "memory", BytesThresholds,
        "Budget of resident memory (RSS) per instance; sizes need a unit (512MiB, 2GB)."),
    Key("runtime", "goroutines", CountThresholds,
        "Budget of live goroutines per instance (go services), optionally with `leak`."),
    Key("runtime", "threads", CountThresholds,
        "Budget of OS threads per instance, optionally with `leak`."),
    Key("runtime", "tasks", CountThresholds,
        "Budget of live asyncio tasks per instance (python services), optionally with `leak`."),
)
METRICS = {"resident_memory": "process_resident_memory_bytes", "goroutines": "go_goroutines",
           "threads": "go_threads", "tasks": "python_asyncio_tasks"}


def declared(service: Service) -> list[tuple[Gauge, Thresholds]]:
    """The gauges the service budgets, with their budgets, in table order."""
    return [(gauge, budget) for gauge in GAUGES
            if (budget := service.budget(gauge.path)) is not None]


def gauge_synthesis(service: Service, metric: str, value: float, samples: int) -> Synthesis:
    labels = common.target_labels(service)
    return Synthesis(
        series=(Series(promql.series(metric, labels), common.gauge(value, samples)),),
        value=value,
        labels=labels,
    )


def gauge_signal(service: Service, gauge: Gauge) -> ThresholdSignal:
    """The threshold signal of one declared runtime gauge."""
    metric = service.metric(gauge.metric)
    return ThresholdSignal(
        signal=gauge.key,
        alert=gauge.alert,
        subject=gauge.subject,
        where="of {service} on {instance}",
        unit=gauge.unit,
        budget=service.budget(gauge.path),
        value_expr=metric + promql.matchers(service.selector),
        synthesize=partial(gauge_synthesis, service, metric),
        onset_steps=0,
    )


def build(service: Service) -> list[Piece]:
    step = common.test_step(service)
    piece = Piece(group="runtime")
    for gauge, _ in declared(service):
        sig = gauge_signal(service, gauge)
        piece.alerts.extend(build_alerts(sig, service))
        piece.scenarios.extend(build_scenarios(sig, service, step))
    return [piece] if piece.alerts else []


def charts(service: Service) -> list[Chart]:
    """One panel per gauge; a count with a leak budget also draws its predicted trend."""
    sel = promql.matchers(service.selector, instance=INSTANCE)
    result = []
    for gauge, budget in declared(service):
        metric = service.metric(gauge.metric)
        queries = [Query(metric + sel, "{{instance}}")]
        description = f"{metric} per instance. "
        leak = getattr(budget, "leak", None)
        if leak is not None:
            trend = common.service_selector(common.predict_record(metric, leak), service,
                                            instance=INSTANCE)
            queries.append(Query(trend, "{{instance}} predicted"))
        chart = budget_chart(
            naming.RUNTIME, gauge.slot, gauge.subject[0].upper() + gauge.subject[1:],
            gauge.unit, description, tuple(queries), budget, gauge.alert,
            f"max({metric}{promql.matchers(service.selector)})",
            alerts=(gauge.leak_alert,) if leak is not None and gauge.leak_alert else ())
        if leak is not None:
            chart = _with_trend_note(chart, leak.window, leak.horizon)
        result.append(chart)
    return result


def _with_trend_note(chart: Chart, window: float, horizon: float) -> Chart:
    return replace(chart, description=chart.description + (
        " The predicted series is the leak trend (linear fit over the "
        f"last {prometheus_duration(window)}, {prometheus_duration(horizon)} ahead)."))


def exposed(service: Service) -> list[str]:
    return [service.metric(gauge.metric) for gauge, _ in declared(service)]


SIGNAL = Signal("runtime", KEYS, build, charts, METRICS, exposed)
