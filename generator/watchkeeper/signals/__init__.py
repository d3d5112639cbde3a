"""The signal registry: one line per signal module, in the order their output appears.

Each module exports a :class:`~watchkeeper.signals.base.Signal`; the spec model, the rule
groups, the promtool tests and the dashboard rows are all derived from this tuple (see
docs/architecture.md). Adding a signal is one module plus one line here.
"""

from __future__ import annotations

from watchkeeper.model import Chart, Service
from watchkeeper.signals import (
    absent,
    cache,
    db_latency,
    db_pool,
    errors,
    gc,
    latency,
    leak,
    runtime,
)
from watchkeeper.signals.base import Key, Signal

SIGNALS: tuple[Signal, ...] = (
    latency.SIGNAL,
    errors.SIGNAL,
    db_latency.SIGNAL,
    db_pool.SIGNAL,
    cache.SIGNAL,
    runtime.SIGNAL,
    leak.SIGNAL,
    gc.SIGNAL,
    absent.SIGNAL,
)


def keys() -> list[Key]:
    """Every spec key a signal reads, in registry order."""
    return [key for signal in SIGNALS for key in signal.keys]


def metric_defaults() -> dict[str, str]:
    """Every metric key a signal reads, with its default name."""
    return {key: name for signal in SIGNALS for key, name in signal.metrics.items()}


def charts(service: Service) -> list[Chart]:
    """Every chart the signals ask for, once each (HTTP budgets share the request rate)."""
    return list(dict.fromkeys(chart for signal in SIGNALS for chart in signal.charts(service)))
