"""Slow database queries: the rate of queries slower than a threshold, over all instances.

A query is slow when it lands above the histogram bucket whose upper bound is the
threshold, so the rate is ``rate(_count) - rate(_bucket{le="<threshold>"})``. The
threshold must therefore be one of the histogram's bucket boundaries; the client
libraries print a boundary differently (Go ``1``, Python ``1.0``), so both spellings are
matched. If the bucket does not exist the subtraction would silently be empty, so a
separate warning, ``DbSlowQueryBucketMissing``, fires while queries are recorded but no
such bucket is.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import Field
from watchkeeper import naming, promql, units
from watchkeeper.budgets import Duration, RateThresholds
from watchkeeper.model import (
    Alert,
    AlertCheck,
    Chart,
    ExpectedAlert,
    Piece,
    Query,
    Recording,
    Scenario,
    Series,
    Service,
    Thresholds,
)
from watchkeeper.signals import common
from watchkeeper.signals.base import Key, Signal
from watchkeeper.signals.panels import INSTANCE, budget_chart
from watchkeeper.signals.threshold import (
    Synthesis,
    ThresholdSignal,
    Unit,
    alert_labels,
    build_alerts,
    build_scenarios,
    steps_for,
)

ALERT = "DbSlowQueriesHigh"
MISSING = "DbSlowQueryBucketMissing"
SIGNAL_NAME = "slow_queries"
PER_SECOND = Unit("humanize", units.humanize, "qps", suffix="/s")
QUERIES_PER_STEP = 10_000  # all queries per test step; the slow ones are a part of them


@dataclass(frozen=True)
class SlowQueries:
    """Resolved: queries slower than `threshold` (seconds) per second, against `budget`."""

    threshold: float
    budget: Thresholds


class SlowQueriesBudget(RateThresholds):
    """Rate of queries slower than `threshold` (a bucket boundary of the histogram)."""

    threshold: Duration = Field(description="A query slower than this is slow; must be a "
                                            "bucket boundary of `database.histogram`.")

    def resolve(self, default_for: float) -> SlowQueries:  # type: ignore[override]
        return SlowQueries(self.threshold, super().resolve(default_for))


KEY = Key("database", "slow_queries", SlowQueriesBudget,
          "Budget of the rate of queries slower than `threshold`, over all instances.")


def le_matcher(threshold: float) -> str:
    """Both spellings of a bucket bound: Go's shortest (``1``, ``0.1``) and Python's
    (``1.0``, ``0.1``)."""
    go = units.format_number(threshold)
    python = repr(float(threshold))
    spellings = dict.fromkeys((go, python))
    return "=~" + "|".join(s.replace(".", "\\.") for s in spellings)


def record(service: Service) -> str:
    return (f"service:{service.setting('database', 'histogram')}:slow_rate"
            f"{common.window(service)}")


def _recording(service: Service, slow: SlowQueries) -> Recording:
    histogram, w = service.setting("database", "histogram"), common.window(service)
    sel = promql.matchers(service.selector)
    fast = promql.matchers(service.selector, le=le_matcher(slow.threshold))
    return Recording(
        record=record(service),
        expr=f"sum(rate({histogram}_count{sel}[{w}]))\n"
             f"- sum(rate({histogram}_bucket{fast}[{w}]))",
        labels={"service": service.name},
    )


def _missing_alert(service: Service, slow: SlowQueries) -> Alert:
    histogram = service.setting("database", "histogram")
    fast = promql.matchers(service.selector, le=le_matcher(slow.threshold))
    bound = units.humanize_duration(slow.threshold)
    return Alert(
        name=MISSING,
        expr=f"absent({histogram}_bucket{fast})\n"
             f"and on() count({histogram}_count{promql.matchers(service.selector)}) > 0",
        for_=service.for_,
        labels=alert_labels(service, SIGNAL_NAME, "warning"),
        annotations={
            "summary": f"{histogram} of {service.name} has no bucket at {bound}",
            "description": f"The slow-query budget of {service.name} counts queries above "
                           f"{bound}, but {histogram} has no bucket with that upper bound, "
                           "so the budget cannot fire. Add the bucket or pick an existing "
                           "bound as the threshold.",
        },
        keep_firing_for=service.keep_firing_for,
    )


def _series(service: Service, slow: SlowQueries, le: str, fast: float, total: float,
            samples: int) -> tuple[Series, ...]:
    histogram = service.setting("database", "histogram")
    labels = common.target_labels(service)
    return (
        Series(promql.series(f"{histogram}_bucket", {**labels, "le": le}),
               common.counter(fast, samples)),
        Series(promql.series(f"{histogram}_bucket", {**labels, "le": "+Inf"}),
               common.counter(total, samples)),
        Series(promql.series(f"{histogram}_count", labels), common.counter(total, samples)),
    )


def _missing_scenarios(service: Service, slow: SlowQueries, alert: Alert) -> list[Scenario]:
    step = common.test_step(service)
    fire_at = steps_for(service.for_, step) * step
    samples = round(fire_at / step) + 3
    other = units.format_number(slow.threshold * 2)  # a bucket, but not the threshold's
    # absent() keeps the selector's equality labels
    expected = ExpectedAlert({**service.selector.equalities(), **alert.labels},
                             dict(alert.annotations))
    pending = (AlertCheck(fire_at - step, MISSING),) if fire_at else ()
    return [
        Scenario(f"{MISSING} fires when no bucket has the threshold as bound",
                 _series(service, slow, other, 10, 10, samples),
                 (*pending, AlertCheck(fire_at, MISSING, (expected,)))),
        Scenario(f"{MISSING} quiet when the bucket exists",
                 _series(service, slow, units.format_number(slow.threshold), 10, 10, samples),
                 (AlertCheck(fire_at, MISSING),)),
    ]


def build(service: Service) -> list[Piece]:
    slow: SlowQueries | None = service.budget(KEY.path)
    if slow is None:
        return []
    step = common.test_step(service)
    le = units.format_number(slow.threshold)

    def synthesize(value: float, samples: int) -> Synthesis:
        slow_per_step = round(value * step, 9)
        return Synthesis(
            series=(*_series(service, slow, le, QUERIES_PER_STEP - slow_per_step,
                             QUERIES_PER_STEP, samples), common.history_series(service, samples)),
            value=slow_per_step / step,
            labels={"service": service.name},
        )

    selector = common.service_selector(record(service), service)
    sig = ThresholdSignal(
        signal=SIGNAL_NAME,
        alert=ALERT,
        subject=f"rate of database queries slower than {units.humanize_duration(slow.threshold)}",
        where="of {service}",
        unit=PER_SECOND,
        budget=slow.budget,
        value_expr=selector,
        synthesize=synthesize,
        guard=common.history_guard(service),
        onset_steps=common.window_steps(service, step),
        recording=selector,
        over=f" over the last {common.window(service)}",
    )
    missing = _missing_alert(service, slow)
    piece = Piece(group="database", recordings=[_recording(service, slow)])
    piece.alerts.extend(build_alerts(sig, service))
    piece.alerts.append(missing)
    piece.scenarios.extend(build_scenarios(sig, service, step))
    piece.scenarios.extend(_missing_scenarios(service, slow, missing))
    return [piece]


def charts(service: Service) -> list[Chart]:
    slow: SlowQueries | None = service.budget(KEY.path)
    if slow is None:
        return []
    selector = common.service_selector(record(service), service)
    bound = units.humanize_duration(slow.threshold)
    histogram, w = service.setting("database", "histogram"), common.window(service)
    sel = promql.matchers(service.selector, instance=INSTANCE)
    fast = promql.matchers(service.selector, instance=INSTANCE, le=le_matcher(slow.threshold))
    per_instance = (f"sum by (instance) (rate({histogram}_count{sel}[{w}]))\n- sum by "
                    f"(instance) (rate({histogram}_bucket{fast}[{w}]))")
    return [budget_chart(
        naming.DATABASE, 3, f"Slow queries (over {bound})", PER_SECOND,
        f"Queries per second slower than {bound}, all instances (the value alerts judge) and "
        "per selected instance. ", (Query(selector, "all"), Query(per_instance, "{{instance}}")),
        slow.budget, ALERT, selector, alerts=(MISSING,))]


SIGNAL = Signal(SIGNAL_NAME, (KEY,), build, charts)
