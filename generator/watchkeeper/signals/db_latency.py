"""Database query latency: quantiles of the query histogram against their budgets."""

from __future__ import annotations

from watchkeeper import naming
from watchkeeper.budgets import LatencyBudgets
from watchkeeper.model import Chart, Piece, Quantiles, Service
from watchkeeper.signals import common
from watchkeeper.signals.base import Key, Signal
from watchkeeper.signals.latency import latency_charts, latency_piece, quantile_signals

KEY = Key("database", "latency", LatencyBudgets,
          "Budgets per quantile of the query-duration histogram (`database.histogram`), over "
          "all instances.")


def build(service: Service) -> list[Piece]:
    latency: Quantiles | None = service.budget(KEY.path)
    if not latency:
        return []
    step = common.test_step(service)
    histogram = service.setting("database", "histogram")
    signals = quantile_signals(service, signal="db_latency", alert_prefix="DbQueryLatency",
                               subject="database query latency", histogram=histogram,
                               latency=latency, step=step)
    return [latency_piece(service, "database", signals, histogram, latency, step)]


def charts(service: Service) -> list[Chart]:
    latency: Quantiles | None = service.budget(KEY.path)
    if not latency:
        return []
    return latency_charts(service, naming.DATABASE, service.setting("database", "histogram"),
                          latency, "Query", "DbQueryLatency")


SIGNAL = Signal("db_latency", (KEY,), build, charts)
