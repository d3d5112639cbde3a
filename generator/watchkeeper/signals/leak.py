"""Leaks: a runtime count (goroutines, threads, tasks) climbing steadily towards its budget.

The alert fires when a linear prediction over `window` crosses the critical budget within
`horizon` *and* the most recent quarter of the window never dips to the level of its
oldest quarter. The second condition is what separates a leak from a sawtooth: goroutines
that spike with load and fall back, or a pool that grows and shrinks, return to their
baseline inside the window, and a leak does not.
"""

from __future__ import annotations

import math

from watchkeeper import promql
from watchkeeper.model import (
    Alert,
    AlertCheck,
    CountThresholds,
    ExpectedAlert,
    Leak,
    Piece,
    Recording,
    Scenario,
    Series,
    Service,
)
from watchkeeper.signals import common
from watchkeeper.signals.base import Signal
from watchkeeper.signals.runtime import GAUGES, Gauge, declared, gauge_signal
from watchkeeper.signals.threshold import (
    alert_labels,
    expected_alert,
    on_instance,
    severities,
    side_by_side,
    steps_for,
)
from watchkeeper.units import format_number, humanize, prometheus_duration

_record = common.predict_record


def _recording(service: Service, metric: str, leak: Leak) -> Recording:
    sel = promql.matchers(service.selector)
    return Recording(
        record=_record(metric, leak),
        expr=f"predict_linear({metric}{sel}[{prometheus_duration(leak.window)}], "
             f"{format_number(leak.horizon)})",
        labels={"service": service.name},
    )


# The oldest quarter must hold at least this share of the newest quarter's samples: a new
# instance has no history yet, and its start-up climb would otherwise look like a leak.
HISTORY_SHARE = 0.9


def _steady_growth(service: Service, metric: str, leak: Leak) -> str:
    """The newest quarter of the window never as low as the oldest quarter's high, with a
    full oldest quarter to compare against."""
    sel = promql.matchers(service.selector)
    quarter = prometheus_duration(leak.window / 4)
    rest = prometheus_duration(leak.window * 3 / 4)
    old = f"{metric}{sel}[{quarter}] offset {rest}"
    return (f"  min_over_time({metric}{sel}[{quarter}])\n"
            f"    > max_over_time({old})\n"
            f"  and count_over_time({old})\n"
            f"    >= count_over_time({metric}{sel}[{quarter}]) * {HISTORY_SHARE}")


def _gate_opens(leak: Leak, step: float) -> float:
    """First evaluation time at which a series starting at 0 has enough history for the
    steady-growth condition (ranges are closed at both ends in Prometheus 2.x)."""
    step_ms, quarter, rest = (round(x * 1000) for x in (step, leak.window / 4,
                                                          leak.window * 3 / 4))

    def samples(start: int, end: int) -> int:  # sample times k*step within [start, end]
        return 0 if end < 0 else end // step_ms - (max(start, 0) + step_ms - 1) // step_ms + 1

    t = 0
    while True:
        old = samples(t - rest - quarter, t - rest)
        if old and old >= samples(t - quarter, t) * HISTORY_SHARE:
            return t / 1000
        t += step_ms


def _annotations(service, subject, leak, critical, value_text, labels):
    instance = "{{ $labels.instance }}" if labels is None else labels["instance"]
    horizon = prometheus_duration(leak.horizon)
    return {
        "summary": f"{subject} of {service.name} on {instance} is growing towards its "
                   f"critical budget of {humanize(critical)}",
        "description": f"{subject} of {service.name} on {instance} has grown steadily over "
                       f"the last {prometheus_duration(leak.window)} and is predicted to reach "
                       f"{value_text} within {horizon}; the critical budget is "
                       f"{humanize(critical)}.",
    }


def _alert(service: Service, gauge: Gauge, metric: str, budget: CountThresholds):
    leak = budget.leak
    assert leak is not None and budget.critical is not None and gauge.leak_alert
    predicted = common.service_selector(_record(metric, leak), service)
    return Alert(
        name=gauge.leak_alert,
        expr=(f"{predicted} > {format_number(budget.critical)}\n"
              f"and ignoring(service)\n(\n{_steady_growth(service, metric, leak)}\n)"),
        for_=leak.for_,
        labels=alert_labels(service, gauge.key, "warning"),
        annotations=_annotations(service, gauge.subject, leak, budget.critical,
                                 "{{ $value | humanize }}", None),
        keep_firing_for=service.keep_firing_for,
    )


# --- Scenarios -------------------------------------------------------------------------------


def _static_expected(service, gauge, values, step, at) -> tuple[ExpectedAlert, ...]:
    """Which static-budget alerts fire at `at` for a gauge taking these per-step values.

    Mirrors Prometheus' evaluation: an alert is active from the first step of an unbroken
    run past its budget and fires once `for` has elapsed since then.
    """
    sig = gauge_signal(service, gauge)
    index = round(at / step)
    expected = []
    for severity, threshold in severities(sig.budget):
        run_start = index
        while run_start >= 0 and values[run_start] > threshold:
            run_start -= 1
        active_since = (run_start + 1) * step
        if values[index] > threshold and at - active_since >= sig.budget.for_:
            expected.append(expected_alert(sig, service, severity, values[index],
                                           common.target_labels(service)))
    return tuple(expected)


def _scenarios(service: Service, gauge, metric: str, budget: CountThresholds) -> list[Scenario]:
    leak = budget.leak
    assert leak is not None and budget.critical is not None
    critical, step = budget.critical, common.leak_test_step(service)
    name = gauge.leak_alert
    labels = common.target_labels(service)
    series_name = promql.series(metric, labels)
    for_steps = steps_for(leak.for_, step)
    onset = _gate_opens(leak, step)
    fire_at = onset + for_steps * step
    samples = round(fire_at / step) + 3
    # Climb so that at the onset the prediction is 10% past critical.
    base = float(round(severities(budget)[0][1] * 0.1))
    per_step = float(f"{(critical * 1.1 - base) / (onset + leak.horizon) * step:.6g}")
    values = [base + per_step * i for i in range(samples + 1)]
    predicted = base + per_step * (fire_at + leak.horizon) / step
    expected = ExpectedAlert(
        labels={**labels, **alert_labels(service, gauge.key, "warning")},
        annotations=_annotations(service, gauge.subject, leak, critical,
                                 humanize(predicted), labels))
    climb = Scenario(
        name=f"{name} fires on a steady climb before the static budget",
        series=(Series(series_name, f"{format_number(base)}+{format_number(per_step)}x{samples}"),),
        alert_checks=(
            *((AlertCheck(fire_at - step, name),) if for_steps else ()),
            AlertCheck(fire_at, name, (expected,)),
            AlertCheck(fire_at, gauge.alert,
                       _static_expected(service, gauge, values, step, fire_at)),
        ),
    )
    level = round(critical * 0.9)
    flat = Scenario(
        name=f"{name} quiet on a flat value just under critical",
        series=(Series(series_name, common.gauge(level, samples)),),
        alert_checks=(
            *((AlertCheck(fire_at - step, name),) if for_steps else ()),
            AlertCheck(fire_at, name),
            AlertCheck(fire_at, gauge.alert,
                       _static_expected(service, gauge, [float(level)] * (samples + 1), step,
                                        fire_at)),
        ),
    )
    # The flat case runs beside the climb on an instance of its own (both judged per
    # instance, checked at the same times): one test group for both.
    beside = on_instance(flat, 1)
    together = side_by_side([climb, beside]) if beside is not None else None
    return [*([together] if together else [climb, flat]),
            _sawtooth(service, name, series_name, leak, critical, step)]


def _sawtooth(service, name, series_name, leak, critical, step) -> Scenario:
    """Rises to 90% of critical and falls back to baseline, twice per window.

    The oldest quarter of the window always holds a peak higher than the newest quarter's
    low, so the steady-growth condition stays closed. Checked at peaks, the first one inside
    the first window, where the history condition is what keeps it quiet, then once a full
    window later. Every range the alert reads lies within the last `window`, so from the
    first full window on, each tooth repeats the state of the one before it sample for
    sample: once a check's `for` (and `keep_firing_for`) reaches back no further than that,
    later teeth would see exactly what it saw. They are not evaluated (they were 18 of the
    36 steps of a 1h window's test).
    """
    period = max(2, round(leak.window / 2 / step))
    low, high = round(critical * 0.1), round(critical * 0.9)
    rise = (high - low) / (period - 1)
    tooth = f"{low}+{format_number(float(f'{rise:.6g}'))}x{period - 1}"
    full = math.ceil(leak.window / step)  # the first step whose window starts at >= 0
    lookback = steps_for(leak.for_ + service.keep_firing_for, step)
    repeats = next((k for k in range(1, 5) if k * period - 1 >= lookback), 4)
    checks = [full + k * period - 1 for k in range(repeats + 1)]
    teeth = math.ceil((checks[-1] + 1) / period)
    return Scenario(
        name=f"{name} quiet on a sawtooth that returns to baseline",
        series=(Series(series_name, " ".join([tooth] * teeth)),),
        alert_checks=tuple(AlertCheck(at * step, name) for at in checks),
    )


def build(service: Service) -> list[Piece]:
    # A group of its own: its scenarios span hours, so they run at a coarser step
    # (common.leak_test_step) in a test file of their own.
    piece = Piece(group="leak", test_step=common.leak_test_step(service))
    for gauge, budget in declared(service):
        if not isinstance(budget, CountThresholds) or budget.leak is None:
            continue
        metric = service.metric(gauge.metric)
        piece.recordings.append(_recording(service, metric, budget.leak))
        piece.alerts.append(_alert(service, gauge, metric, budget))
        piece.scenarios.extend(_scenarios(service, gauge, metric, budget))
    return [piece] if piece.alerts else []


# The leak reads the `leak` block of the runtime counts (keys declared by runtime.py) and
# is drawn on their panels, which name its alerts.
SIGNAL = Signal("leak", (), build, reads=tuple(gauge.path for gauge in GAUGES))
