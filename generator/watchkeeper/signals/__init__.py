"""The signal registry: one line per signal module, in the order their output appears.

Each module exports a :class:`~watchkeeper.signals.base.Signal`; the spec model, the rule
groups, the promtool tests and the dashboard rows are all derived from this tuple (see
docs/architecture.md). Adding a signal is one module plus one line here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from watchkeeper.model import Chart, Scenario, Service
from watchkeeper.signals import (
    absent,
    cache,
    cpu,
    db_latency,
    db_pool,
    errors,
    gc,
    jobs,
    latency,
    leak,
    runtime,
    slo,
    slow_queries,
    throughput,
)
from watchkeeper.signals.base import Key, Signal
from watchkeeper.signals.threshold import Joint, build_joint

if TYPE_CHECKING:
    from watchkeeper.parts import Seen

SIGNALS: tuple[Signal, ...] = (
    latency.SIGNAL,
    errors.SIGNAL,
    throughput.SIGNAL,
    db_latency.SIGNAL,
    db_pool.SIGNAL,
    slow_queries.SIGNAL,
    cache.SIGNAL,
    jobs.SIGNAL,
    runtime.SIGNAL,
    leak.SIGNAL,
    gc.SIGNAL,
    cpu.SIGNAL,
    absent.SIGNAL,
    slo.SIGNAL,
)


def keys() -> list[Key]:
    """Every spec key a signal reads, in registry order."""
    return [key for signal in SIGNALS for key in signal.keys]


def checks() -> list:
    """The signals' validations across keys of one input service (see Signal.check)."""
    return [signal.check for signal in SIGNALS if signal.check is not None]


def metric_defaults() -> dict[str, str]:
    """Every metric key a signal reads, with its default name."""
    return {key: name for signal in SIGNALS for key, name in signal.metrics.items()}


def charts(service: Service, seen: Seen | None = None) -> list[Chart]:
    """Every chart the signals ask for, once per place (row and slot).

    Signals may ask for the same panel: latency and errors both show the request rate.
    Where one of them draws a budget on it (throughput), that one takes the place. With
    `seen` (`parts.Parts.service`), a signal's charts come from an earlier service with the
    same inputs where there is one.
    """
    placed: dict[tuple, Chart] = {}
    for signal in SIGNALS:
        for chart in signal.charts(service) if seen is None else seen.charts(signal):
            place = (chart.row, chart.slot)
            if place not in placed or (placed[place].budget is None and chart.budget):
                placed[place] = chart
    return list(placed.values())


def joint_scenarios(joints: list[Joint], service: Service) -> list[Scenario]:
    """The scenarios of one rule group's joints (cases on an event count that several
    signals may read, e.g. latency and errors on the request count): the joints of one
    count built together, level by level (`threshold.build_joint`), a joint alone (or
    joints that cannot be built together) with its own scenarios. Each module still
    decides its values, checks and series; only their side-by-side placement is here."""
    by_traffic: dict[str, list[Joint]] = {}
    for joint in joints:
        by_traffic.setdefault(joint.traffic, []).append(joint)
    scenarios: list[Scenario] = []
    for shared in by_traffic.values():
        together = build_joint(shared, service) if len(shared) > 1 else None
        scenarios += together or [s for joint in shared for s in joint.alone()]
    return scenarios
