"""HTTP throughput: the request rate of the whole service against a floor (lower is worse).

A drop in traffic with every target up is what a broken upstream, a bad deploy of a
client or a DNS change looks like from here; the error ratio and latency stay perfect
because no request arrives. The value is the service-wide request rate from the request
histogram's `_count` (the recording latency and errors share).
"""

from __future__ import annotations

from watchkeeper import naming, promql, units
from watchkeeper.budgets import LowRateThresholds
from watchkeeper.model import Chart, Piece, Series, Service, Thresholds
from watchkeeper.signals import common
from watchkeeper.signals.base import Key, Signal
from watchkeeper.signals.latency import request_rate_queries
from watchkeeper.signals.panels import budget_chart
from watchkeeper.signals.threshold import (
    Synthesis,
    ThresholdSignal,
    Unit,
    build_alerts,
    build_scenarios,
)

KEY = Key("http", "throughput", LowRateThresholds,
          "Floor of the request rate over all instances (requests/s, or /min); lower is worse.")
ALERT = "HttpThroughputLow"
PER_SECOND = Unit("humanize", units.humanize, "reqps", suffix="/s")


def _count(service: Service) -> str:
    return f"{service.setting('http', 'histogram')}_count"


def build(service: Service) -> list[Piece]:
    budget: Thresholds | None = service.budget(KEY.path)
    if budget is None:
        return []
    step = common.test_step(service)
    count = _count(service)
    rate = common.rate_selector(service, count)
    labels = {**common.target_labels(service), service.setting("http", "status_label"): "200"}

    def synthesize(value: float, samples: int) -> Synthesis:
        per_step = round(value * step, 9)
        return Synthesis(
            series=(Series(promql.series(count, labels), common.counter(per_step, samples)),
                    common.history_series(service, samples)),
            value=per_step / step,
            labels={"service": service.name},
        )

    sig = ThresholdSignal(
        signal="throughput",
        alert=ALERT,
        subject="HTTP request rate",
        where="of {service}",
        unit=PER_SECOND,
        budget=budget,
        value_expr=rate,
        synthesize=synthesize,
        guard=common.history_guard(service),
        onset_steps=common.window_steps(service, step),
        recording=rate,
        over=f" over the last {common.window(service)}",
    )
    piece = Piece(group="http", recordings=[common.rate_recording(service, count)])
    piece.alerts.extend(build_alerts(sig, service))
    piece.scenarios.extend(build_scenarios(sig, service, step))
    return [piece]


def charts(service: Service) -> list[Chart]:
    """The HTTP row's request-rate panel, now drawing the floor (it replaces the plain one)."""
    budget: Thresholds | None = service.budget(KEY.path)
    if budget is None:
        return []
    rate = common.rate_selector(service, _count(service))
    return [budget_chart(naming.HTTP, 1, "Request rate", PER_SECOND,
                         "Requests per second, all instances (the value the floor judges) "
                         "and per selected instance. ", request_rate_queries(service),
                         budget, ALERT, rate)]


SIGNAL = Signal("throughput", (KEY,), build, charts)
