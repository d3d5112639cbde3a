"""HTTP error ratio: 5xx responses over all responses, as a ratio of summed rates."""

from __future__ import annotations

from functools import partial

from watchkeeper import naming, promql
from watchkeeper.budgets import RatioThresholds
from watchkeeper.model import Chart, Piece, Query, Recording, Series, Service, Thresholds
from watchkeeper.signals import common
from watchkeeper.signals.base import Key, Signal
from watchkeeper.signals.latency import request_rate_chart
from watchkeeper.signals.panels import INSTANCE, budget_chart
from watchkeeper.signals.threshold import (
    RATIO,
    Joint,
    Synthesis,
    ThresholdSignal,
    build_alerts,
    build_scenarios,
)

KEY = Key("http", "error_ratio", RatioThresholds,
          "Budget of the share of responses with a 5xx status (`http.status_label`), over all "
          "instances.")
ALERT = "HttpErrorRatioHigh"
ERROR_CODES = "5.."
RESPONSES_PER_STEP = 100_000  # fine enough for a 0.1% budget to be whole requests


def error_ratio_record(service: Service) -> str:
    histogram = service.setting("http", "histogram")
    return f"service:{histogram}_count:error_ratio_rate{common.window(service)}"


def build(service: Service) -> list[Piece]:
    budget: Thresholds | None = service.budget(KEY.path)
    if budget is None:
        return []
    step = common.test_step(service)
    w = common.window(service)
    count = f"{service.setting('http', 'histogram')}_count"
    status = service.setting("http", "status_label")
    sel = promql.matchers(service.selector)
    errors = promql.matchers(service.selector, **{status: "=~" + ERROR_CODES})
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
                Series(promql.series(count, {**labels, status: "200"}),
                       common.counter(total - failed, samples)),
                Series(promql.series(count, {**labels, status: "500"}),
                       common.counter(failed, samples)),
            ),
            value=failed / total,
            labels=result,
        )

    def sparse(value: float, samples: int) -> Synthesis:
        return synthesize(value, samples, common.sparse_per_step(service, step))

    sig = ThresholdSignal(
        signal="errors",
        alert=ALERT,
        subject="HTTP 5xx error ratio",
        where="of {service}",
        unit=RATIO,
        budget=budget,
        value_expr=common.service_selector(record, service),
        guard=common.traffic_guard(service, common.rate_selector(service, count)),
        synthesize=synthesize,
        sparse=sparse,
        onset_steps=1,
        recording=common.service_selector(record, service),
        upper_bound=1.0,
        over=f" over the last {w}",
    )
    piece = Piece(group="http", recordings=[common.rate_recording(service, count), ratio])
    piece.alerts.extend(build_alerts(sig, service))

    def part(wanted: list[tuple[ThresholdSignal, float]], events: float, samples: int,
             _count: bool) -> tuple[tuple[Series, ...], list[float]]:
        made = synthesize(wanted[0][1], samples, events)
        return made.series, [made.value]

    # The latency histogram counts the same requests: its cases may run beside these, the
    # count split by status (this part always writes it).
    piece.joints.append(Joint(
        traffic=count, signals=(sig,), events=RESPONSES_PER_STEP,
        sparse=(common.sparse_per_step(service, step),), part=part, labels=result, step=step,
        alone=partial(build_scenarios, sig, service, step), splits=True))
    return [piece]


def charts(service: Service) -> list[Chart]:
    budget: Thresholds | None = service.budget(KEY.path)
    if budget is None:
        return []
    expr = common.service_selector(error_ratio_record(service), service)
    count = f"{service.setting('http', 'histogram')}_count"
    status, w = service.setting("http", "status_label"), common.window(service)
    sel = promql.matchers(service.selector, instance=INSTANCE)
    errors = promql.matchers(service.selector, instance=INSTANCE,
                             **{status: "=~" + ERROR_CODES})
    per_instance = (f"sum by (instance) (rate({count}{errors}[{w}]))\n/\n"
                    f"sum by (instance) (rate({count}{sel}[{w}]))")
    return [request_rate_chart(service), budget_chart(
        naming.HTTP, 2, "Error ratio (5xx)", RATIO,
        "Share of 5xx responses, all instances (the value alerts judge) and per selected "
        "instance. ", (Query(expr, "all"), Query(per_instance, "{{instance}}")),
        budget, ALERT, expr)]


SIGNAL = Signal("errors", (KEY,), build, charts)
