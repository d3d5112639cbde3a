"""HTTP request latency: quantiles of the request histogram against their budgets."""

from __future__ import annotations

from functools import partial

from watchkeeper import naming, promql
from watchkeeper.budgets import LatencyBudgets
from watchkeeper.model import Chart, Piece, Quantiles, Query, Row, Scenario, Service
from watchkeeper.signals import common
from watchkeeper.signals.base import Key, Signal
from watchkeeper.signals.panels import INSTANCE, budget_chart
from watchkeeper.signals.threshold import (
    DURATION,
    Joint,
    ThresholdSignal,
    build_alerts,
    build_scenarios,
    build_together,
)
from watchkeeper.units import format_number

KEY = Key("http", "latency", LatencyBudgets,
          "Budgets per quantile of the request-duration histogram (`http.histogram`), over "
          "all instances.")
QUANTILE_SLOTS = ("p50", "p75", "p90", "p95", "p99", "p999")  # slot 10 + index in a row


def quantile_signals(service: Service, *, signal: str, alert_prefix: str, subject: str,
                     histogram: str, latency: Quantiles, step: float) -> list[ThresholdSignal]:
    """One threshold signal per declared quantile of a service-wide latency histogram."""
    w = common.window(service)
    count = f"{histogram}_count"
    result = {"service": service.name}
    signals = []
    for quantile in latency:
        name, q = quantile.name, quantile.q
        per_step = common.traffic_per_step(service, step, q)
        record = common.service_selector(f"service:{histogram}:{name}_rate{w}", service)
        labels = common.target_labels(service)
        signals.append(ThresholdSignal(
            signal=signal,
            alert=alert_name(alert_prefix, name),
            subject=f"{name} {subject}",
            where="of {service}",
            unit=DURATION,
            budget=quantile.budget,
            value_expr=record,
            guard=common.traffic_guard(service, common.rate_selector(service, count), q=q),
            synthesize=partial(_synthesize, histogram, labels, q, per_step, result),
            sparse=partial(_synthesize, histogram, labels, q,
                           common.sparse_per_step(service, step, q), result),
            onset_steps=1,
            recording=record,
            over=f" over the last {w}",
        ))
    return signals


def alert_name(prefix: str, quantile: str) -> str:
    return f"{prefix}{quantile.upper()}High"


def _synthesize(histogram, labels, q, per_step, result, value, samples):
    return common.histogram_synthesis(histogram, labels, q, value, per_step, samples, result)


def latency_piece(service: Service, group: str, signals: list[ThresholdSignal],
                  histogram: str, latency: Quantiles, step: float) -> Piece:
    piece = Piece(group=group)
    piece.recordings.append(common.rate_recording(service, f"{histogram}_count"))
    piece.recordings.extend(common.quantile_recordings(
        service, histogram, [(quantile.name, quantile.q) for quantile in latency]))
    for sig in signals:
        piece.alerts.extend(build_alerts(sig, service))
    # Quantiles of one histogram are tested together where their cases allow (each level
    # of cases, e.g. p50 and p99 both just past warning, from one histogram).
    quantiles = [quantile.q for quantile in latency]
    per_step = max(common.traffic_per_step(service, step, q) for q in quantiles)
    labels = common.target_labels(service)
    result = {"service": service.name}
    together = partial(_together, histogram, labels, quantiles, per_step)

    def alone() -> list[Scenario]:
        shared = build_together(signals, service, step, together, result) \
            if len(signals) > 1 else None
        return shared or [s for sig in signals for s in build_scenarios(sig, service, step)]

    # Other signals counting the same requests (errors) may run beside these cases.
    piece.joints.append(Joint(
        traffic=f"{histogram}_count", signals=tuple(signals), events=per_step,
        sparse=tuple(common.sparse_per_step(service, step, q) for q in quantiles),
        part=partial(_part, histogram, labels, dict(zip((s.alert for s in signals), quantiles,
                                                        strict=True))),
        labels=result, step=step, alone=alone))
    return piece


def _together(histogram, labels, quantiles, per_step, values, samples):
    return common.quantiles_synthesis(histogram, labels, list(zip(quantiles, values,
                                                                  strict=True)),
                                      per_step, samples)


def _part(histogram, labels, q_of, wanted, events, samples, count):
    """The histogram of a joint case (`threshold.Joint.part`): its buckets holding each
    wanted quantile's value, and its count unless another part splits it."""
    return common.quantiles_synthesis(histogram, labels, [(q_of[sig.alert], value)
                                                          for sig, value in wanted],
                                      events, samples, count)


def latency_charts(service: Service, row: Row, histogram: str, latency: Quantiles,
                   what: str, alert_prefix: str) -> list[Chart]:
    """One panel per declared quantile, its budget drawn as threshold lines: the
    service-wide value the alert judges, and each selected instance's; then a heatmap of
    the whole distribution."""
    w = common.window(service)
    by_instance = promql.matchers(service.selector, instance=INSTANCE)
    charts = []
    for quantile in latency:
        name = quantile.name
        expr = common.service_selector(common.quantile_record(service, histogram, name), service)
        per_instance = (f"histogram_quantile({format_number(quantile.q)}, sum by (le, instance) "
                        f"(rate({histogram}_bucket{by_instance}[{w}])))")
        charts.append(budget_chart(
            row, 10 + QUANTILE_SLOTS.index(name), f"{what} latency {name}", DURATION,
            f"{name} of {histogram} over {w}, all instances (the value alerts judge) and "
            "per selected instance. ",
            (Query(expr, f"{name} all"), Query(per_instance, f"{name} {{{{instance}}}}")),
            quantile.budget, alert_name(alert_prefix, name), expr))
    charts.append(Chart(
        row, 9, f"{what} latency distribution", "s",
        f"Observations per second in each bucket of {histogram}, selected instances.",
        (Query(f"sum by (le) (rate({histogram}_bucket{by_instance}[$__rate_interval]))",
               "{{le}}"),), kind="heatmap"))
    return charts


def request_rate_queries(service: Service) -> tuple[Query, ...]:
    """Requests per second of the whole service, and of each selected instance."""
    count = f"{service.setting('http', 'histogram')}_count"
    by_instance = promql.matchers(service.selector, instance=INSTANCE)
    return (Query(common.rate_selector(service, count), "all"),
            Query(f"sum by (instance) (rate({count}{by_instance}[{common.window(service)}]))",
                  "{{instance}}"))


def request_rate_chart(service: Service) -> Chart:
    """Requests per second: the context of every HTTP budget (latency and errors share it)."""
    return Chart(naming.HTTP, 1, "Request rate", "reqps",
                 "Requests per second, all instances and per selected instance.",
                 request_rate_queries(service))


def build(service: Service) -> list[Piece]:
    latency: Quantiles | None = service.budget(KEY.path)
    if not latency:
        return []
    step = common.test_step(service)
    histogram = service.setting("http", "histogram")
    signals = quantile_signals(service, signal="latency", alert_prefix="HttpLatency",
                               subject="HTTP latency", histogram=histogram,
                               latency=latency, step=step)
    return [latency_piece(service, "http", signals, histogram, latency, step)]


def charts(service: Service) -> list[Chart]:
    latency: Quantiles | None = service.budget(KEY.path)
    if not latency:
        return []
    return [request_rate_chart(service), *latency_charts(
        service, naming.HTTP, service.setting("http", "histogram"), latency, "HTTP",
        "HttpLatency")]


SIGNAL = Signal("latency", (KEY,), build, charts)
