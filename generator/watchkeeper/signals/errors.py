"""HTTP error ratio: 5xx responses over all responses, as a ratio of summed rates."""

from __future__ import annotations

from watchkeeper import promql
from watchkeeper.dashboards import ids
from watchkeeper.model import Piece, Recording, Series
from watchkeeper.signals import common
from watchkeeper.signals.threshold import (
    RATIO,
    Synthesis,
    ThresholdSignal,
    build_alerts,
    build_scenarios,
)
from watchkeeper.spec import Service

ERROR_CODES = "5.."
RESPONSES_PER_STEP = 100_000  # fine enough for a 0.1% budget to be whole requests


def error_ratio_record(service: Service) -> str:
    assert service.http is not None
    return f"service:{service.http.histogram}_count:error_ratio_rate{common.window(service)}"


def build(service: Service) -> list[Piece]:
    http = service.http
    if http is None or http.error_ratio is None:
        return []
    step = common.test_step(service)
    w = common.window(service)
    count = f"{http.histogram}_count"
    sel = promql.matchers(service.selector)
    errors = promql.matchers(service.selector, **{http.status_label: "=~" + ERROR_CODES})
    record = error_ratio_record(service)
    ratio = Recording(
        record=record,
        expr=f"sum(rate({count}{errors}[{w}]))\n/\nsum(rate({count}{sel}[{w}]))",
        labels={"service": service.name},
    )
    labels = common.target_labels(service)
    result = {"service": service.name}

    def synthesize(value: float, samples: int, total: float = RESPONSES_PER_STEP) -> Synthesis:
        failed = round(value * total, 9)
        return Synthesis(
            series=(
                Series(promql.series(count, {**labels, http.status_label: "200"}),
                       common.counter(total - failed, samples)),
                Series(promql.series(count, {**labels, http.status_label: "500"}),
                       common.counter(failed, samples)),
            ),
            value=failed / total,
            labels=result,
        )

    def sparse(value: float, samples: int) -> Synthesis:
        return synthesize(value, samples, common.sparse_per_step(service, step))

    sig = ThresholdSignal(
        signal="errors",
        alert="HttpErrorRatioHigh",
        subject="HTTP 5xx error ratio",
        where="of {service}",
        unit=RATIO,
        budget=http.error_ratio,
        value_expr=common.service_selector(record, service),
        guard=common.traffic_guard(service, common.rate_selector(service, count)),
        synthesize=synthesize,
        sparse=sparse,
        onset_steps=1,
        recording=common.service_selector(record, service),
        upper_bound=1.0,
        over=f" over the last {w}",
        panel=ids.HTTP_ERRORS,
    )
    piece = Piece(group="http", recordings=[common.rate_recording(service, count), ratio])
    piece.alerts.extend(build_alerts(sig, service))
    piece.scenarios.extend(build_scenarios(sig, service, step))
    return [piece]
