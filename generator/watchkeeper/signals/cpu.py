"""CPU: the share of the CPU available to an instance that it uses, per instance.

Used CPU is ``rate(process_cpu_seconds_total)`` (both client libraries export it). What
is *available* is the instance's own statement of it: Go's `go_sched_gomaxprocs_threads`
(client_golang ≥ 1.20; GOMAXPROCS follows the container's CPU limit from Go 1.25, or with
go.uber.org/automaxprocs before that) and the Python runtime collector's cgroup-aware
`python_cpu_available_cores`. A spec may state `cores` instead, which wins. Either way the
value is known: a missing gauge is reported by ServiceMetricsAbsent, never a silent rule.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field
from watchkeeper import naming, promql
from watchkeeper.budgets import RatioThresholds
from watchkeeper.model import Chart, Piece, Query, Recording, Series, Service, Thresholds
from watchkeeper.signals import common
from watchkeeper.signals.base import Key, Signal
from watchkeeper.signals.panels import INSTANCE, budget_chart
from watchkeeper.signals.threshold import (
    RATIO,
    Synthesis,
    ThresholdSignal,
    build_alerts,
    build_scenarios,
)
from watchkeeper.units import format_number

ALERT = "CpuUtilizationHigh"
METRICS = {"cpu_seconds": "process_cpu_seconds_total",
           "cpu_available": "go_sched_gomaxprocs_threads"}
TEST_CORES = 4.0  # CPUs of a synthesized instance


@dataclass(frozen=True)
class Cpu:
    """Resolved: the budget, and the CPUs available when the spec states them."""

    budget: Thresholds
    cores: float | None


class CpuBudget(RatioThresholds):
    """Share of the available CPU used, per instance."""

    cores: float | None = Field(None, gt=0, description=(
        "CPUs available to each instance; default: what the instance reports "
        "(go_sched_gomaxprocs_threads for go, python_cpu_available_cores for python)."))

    def resolve(self, default_for: float) -> Cpu:  # type: ignore[override]
        return Cpu(super().resolve(default_for), self.cores)


KEY = Key("runtime", "cpu", CpuBudget,
          "Budget of the CPU used over the CPU available, per instance (70% = 0.7 of the "
          "available cores).")


def record(service: Service) -> str:
    return f"instance:{service.metric('cpu_seconds')}:utilization_rate{common.window(service)}"


def _recording(service: Service, cpu: Cpu) -> Recording:
    sel, w = promql.matchers(service.selector), common.window(service)
    used = f"rate({service.metric('cpu_seconds')}{sel}[{w}])"
    available = (format_number(cpu.cores) if cpu.cores is not None
                 else f"{service.metric('cpu_available')}{sel}")
    return Recording(record(service), f"{used}\n/\n{available}", {"service": service.name})


def build(service: Service) -> list[Piece]:
    cpu: Cpu | None = service.budget(KEY.path)
    if cpu is None:
        return []
    step = common.test_step(service)
    labels = common.target_labels(service)
    cores = cpu.cores if cpu.cores is not None else TEST_CORES

    def synthesize(value: float, samples: int) -> Synthesis:
        per_step = round(value * cores * step, 9)
        series = [Series(promql.series(service.metric("cpu_seconds"), labels),
                         common.counter(per_step, samples)),
                  common.history_series(service, samples)]
        if cpu.cores is None:
            series.append(Series(promql.series(service.metric("cpu_available"), labels),
                                 common.gauge(cores, samples)))
        return Synthesis(tuple(series), per_step / step / cores,
                         {**labels, "service": service.name})

    selector = common.service_selector(record(service), service)
    sig = ThresholdSignal(
        signal="cpu",
        alert=ALERT,
        subject="CPU utilisation",
        where="of {service} on {instance}",
        unit=RATIO,
        budget=cpu.budget,
        value_expr=selector,
        synthesize=synthesize,
        guard=common.history_guard(service),
        onset_steps=common.window_steps(service, step),
        recording=selector,
        over=f" over the last {common.window(service)}",
    )
    piece = Piece(group="runtime", recordings=[_recording(service, cpu)])
    piece.alerts.extend(build_alerts(sig, service))
    piece.scenarios.extend(build_scenarios(sig, service, step))
    return [piece]


def charts(service: Service) -> list[Chart]:
    cpu: Cpu | None = service.budget(KEY.path)
    if cpu is None:
        return []
    available = (f"{format_number(cpu.cores)} cores (spec)" if cpu.cores is not None
                 else service.metric("cpu_available"))
    return [budget_chart(
        naming.RUNTIME, 6, "CPU utilisation", RATIO,
        f"CPU seconds per second over the CPUs available ({available}), per instance. ",
        (Query(common.service_selector(record(service), service, instance=INSTANCE),
               "{{instance}}"),),
        cpu.budget, ALERT, f"max({common.service_selector(record(service), service)})")]


def exposed(service: Service) -> list[str]:
    cpu: Cpu | None = service.budget(KEY.path)
    if cpu is None:
        return []
    return [service.metric("cpu_seconds")] + (
        [service.metric("cpu_available")] if cpu.cores is None else [])


SIGNAL = Signal("cpu", (KEY,), build, charts, METRICS, exposed)
