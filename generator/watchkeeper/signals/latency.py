"""HTTP request latency: quantiles of the request histogram against their budgets."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from watchkeeper.dashboards import ids
from watchkeeper.model import Piece
from watchkeeper.signals import common
from watchkeeper.signals.threshold import DURATION, ThresholdSignal, build_alerts, build_scenarios
from watchkeeper.spec import QUANTILES, LatencyBudgets, Service


def quantile_signals(service: Service, *, signal: str, alert_prefix: str, subject: str,
                     histogram: str, latency: LatencyBudgets, step: float,
                     panel: Callable[[str], int] | None = None) -> list[ThresholdSignal]:
    """One threshold signal per declared quantile of a service-wide latency histogram."""
    w = common.window(service)
    count = f"{histogram}_count"
    per_step = common.traffic_per_step(service, step)
    result = {"service": service.name}
    signals = []
    for name, budget in latency.items():
        q = QUANTILES[name]
        record = common.service_selector(f"service:{histogram}:{name}_rate{w}", service)
        labels = common.target_labels(service)
        signals.append(ThresholdSignal(
            signal=signal,
            alert=f"{alert_prefix}{name.upper()}High",
            subject=f"{name} {subject}",
            where="of {service}",
            unit=DURATION,
            budget=budget,
            value_expr=record,
            guard=common.traffic_guard(service, common.rate_selector(service, count)),
            synthesize=partial(_synthesize, histogram, labels, q, per_step, result),
            sparse=partial(_synthesize, histogram, labels, q,
                           common.sparse_per_step(service, step), result),
            onset_steps=1,
            recording=record,
            over=f" over the last {w}",
            panel=panel(name) if panel else None,
        ))
    return signals


def _synthesize(histogram, labels, q, per_step, result, value, samples):
    return common.histogram_synthesis(histogram, labels, q, value, per_step, samples, result)


def latency_piece(service: Service, group: str, signals: list[ThresholdSignal],
                  histogram: str, latency: LatencyBudgets, step: float) -> Piece:
    piece = Piece(group=group)
    piece.recordings.append(common.rate_recording(service, f"{histogram}_count"))
    piece.recordings.extend(common.quantile_recordings(
        service, histogram, [(name, QUANTILES[name]) for name, _ in latency.items()]))
    for sig in signals:
        piece.alerts.extend(build_alerts(sig, service))
        piece.scenarios.extend(build_scenarios(sig, service, step))
    return piece


def build(service: Service) -> list[Piece]:
    http = service.http
    if http is None or http.latency is None:
        return []
    step = common.test_step(service)
    signals = quantile_signals(service, signal="latency", alert_prefix="HttpLatency",
                               subject="HTTP latency", histogram=http.histogram,
                               latency=http.latency, step=step,
                               panel=ids.http_latency)
    return [latency_piece(service, "http", signals, http.histogram, http.latency, step)]
