"""Database query latency: quantiles of the query histogram against their budgets."""

from __future__ import annotations

from watchkeeper.dashboards import ids
from watchkeeper.model import Piece
from watchkeeper.signals import common
from watchkeeper.signals.latency import latency_piece, quantile_signals
from watchkeeper.spec import Service


def build(service: Service) -> list[Piece]:
    db = service.database
    if db is None or db.latency is None:
        return []
    step = common.test_step(service)
    signals = quantile_signals(service, signal="db_latency", alert_prefix="DbQueryLatency",
                               subject="database query latency", histogram=db.histogram,
                               latency=db.latency, step=step,
                               panel=ids.db_latency)
    return [latency_piece(service, "database", signals, db.histogram, db.latency, step)]
