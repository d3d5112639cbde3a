"""The shape every budgeted signal shares: alerts per severity, and the scenarios proving them.

A signal module describes *what* is measured (the PromQL value, its unit, how to synthesize
input series that produce a chosen value); this module derives the alerting rules for each
severity and the promtool scenarios: quiet just on the good side of the lowest budget,
each severity just past its budget (not firing one step before `for` has elapsed, firing
at it), and, where traffic matters, quiet despite a bad value when there is too little traffic.
"""

from __future__ import annotations

import functools
import math
import string
from collections.abc import Callable
from dataclasses import dataclass

from watchkeeper import units
from watchkeeper.model import (
    Alert,
    AlertCheck,
    ExpectedAlert,
    ExprCheck,
    Scenario,
    Series,
    Service,
    Thresholds,
)

SEVERITIES = ("warning", "critical")


@dataclass(frozen=True)
class Unit:
    """How a signal's values read: the template function Prometheus renders them with."""

    template: str
    humanize: Callable[[float], str]
    grafana: str  # the panel unit Grafana formats values with
    suffix: str = ""
    whole: bool = False  # test values are rounded to whole numbers (counts, bytes)

    def render(self, value: float) -> str:
        if value == 0:  # 0.0 and -0.0 are one cache key but may read apart
            return self.humanize(value) + self.suffix
        return _rendered(self.humanize, self.suffix, value)

    def template_text(self) -> str:
        return "{{ $value | " + self.template + " }}" + self.suffix


@functools.lru_cache(maxsize=4096)
def _rendered(humanize: Callable[[float], str], suffix: str, value: float) -> str:
    """A value's text: every service renders the same budgets and test values."""
    return humanize(value) + suffix

DURATION = Unit("humanizeDuration", units.humanize_duration, "s")
RATIO = Unit("humanizePercentage", units.humanize_percentage, "percentunit")
BYTES = Unit("humanize1024", units.humanize_1024, "bytes", suffix="B", whole=True)
COUNT = Unit("humanize", units.humanize, "short", whole=True)


@dataclass(frozen=True)
class Synthesis:
    """Input series that make the signal's expression return `value` with `labels`."""

    series: tuple[Series, ...]
    value: float
    labels: dict[str, str]


# (value wanted, samples to write) -> series producing it
Synthesizer = Callable[[float, int], Synthesis]


@dataclass(frozen=True)
class ThresholdSignal:
    """Everything needed to alert on one budget and to prove the alerts with promtool."""

    signal: str
    alert: str
    subject: str  # "p99 HTTP latency", used in summary and description
    where: str  # "of {service}" or "on {instance}": str.format with result label names
    unit: Unit
    budget: Thresholds
    value_expr: str  # PromQL whose value is compared with the budget
    synthesize: Synthesizer
    onset_steps: int  # evaluation steps before the expression first has a value (rates: 1)
    guard: str | None = None  # PromQL joined with `and`: e.g. enough traffic to judge
    sparse: Synthesizer | None = None  # a bad value with too little traffic: must stay quiet
    recording: str | None = None  # selector of the recording holding the value, to check it
    upper_bound: float | None = None  # values cannot exceed this (ratios: 1)
    over: str = ""  # " over the last 5m" for values computed over a window
    labels: tuple[tuple[str, str], ...] = ()  # extra alert labels telling rules apart (cache)


def severities(budget: Thresholds) -> list[tuple[str, float]]:
    return budget.severities()


def alert_labels(service: Service, signal: str, severity: str,
                 extra: tuple[tuple[str, str], ...] = ()) -> dict[str, str]:
    return {"service": service.name, "signal": signal, "severity": severity, **dict(extra),
            **service.labels}


def _where(template: str, labels: dict[str, str] | None, service: Service) -> str:
    """Render `where` either as a Go template (labels None) or with concrete labels."""
    names = _placeholders(template)
    if not names:  # "of {service}": most signals
        return template.format(service=service.name)
    values = {name: ("{{ $labels." + name + " }}" if labels is None else labels[name])
              for name in names}
    return template.format(service=service.name, **values)


@functools.lru_cache(maxsize=256)  # a few templates, parsed for every alert and scenario
def _placeholders(template: str) -> tuple[str, ...]:
    """The placeholders of `template` but `service`, each once."""
    return tuple(dict.fromkeys(name for _, name, _, _ in string.Formatter().parse(template)
                               if name and name != "service"))


def _annotations(sig: ThresholdSignal, service: Service, severity: str, threshold: float,
                 value_text: str, labels: dict[str, str] | None) -> dict[str, str]:
    worse = "below" if sig.budget.lower_is_worse else "above"
    where = _where(sig.where, labels, service)
    return {
        "summary": f"{sig.subject} {where} is {worse} its {severity} budget of "
                   f"{sig.unit.render(threshold)}",
        "description": f"{sig.subject} {where} is {value_text}{sig.over}; the {severity} "
                       f"budget is {sig.unit.render(threshold)}.",
    }


def build_alerts(sig: ThresholdSignal, service: Service) -> list[Alert]:
    """One alerting rule per declared severity, all under the signal's alert name."""
    op = "<" if sig.budget.lower_is_worse else ">"
    alerts = []
    for severity, threshold in severities(sig.budget):
        expr = f"{sig.value_expr} {op} {units.format_number(threshold)}"
        if sig.guard:
            expr += f"\nand {sig.guard}"
        alerts.append(Alert(
            name=sig.alert,
            expr=expr,
            for_=sig.budget.for_,
            labels=alert_labels(service, sig.signal, severity, sig.labels),
            annotations=_annotations(sig, service, severity, threshold,
                                     sig.unit.template_text(), None),
            keep_firing_for=service.keep_firing_for,
        ))
    return alerts


# --- Scenarios -------------------------------------------------------------------------------


def _round(value: float, unit: Unit) -> float:
    if unit.whole:
        return float(round(value))
    if unit is DURATION and value >= 60:
        # humanizeDuration truncates to whole seconds from a minute up, so a value that Go
        # computes as 131.9999… would read "2m 11s": keep test values mid-second.
        return math.floor(value) + 0.5
    return float(f"{value:.3g}")


def test_values(sig: ThresholdSignal) -> list[tuple[float, list[str]]]:
    """Values on either side of each budget, each with the severities it must fire.

    "Just past" is 10% of the budget (or half the gap to the next budget, if nearer),
    so each case lands unambiguously on one side and nowhere near the other budget.
    """
    budget, bound = sig.budget, sig.upper_bound
    levels = severities(budget)
    sign = -1.0 if budget.lower_is_worse else 1.0
    cases: list[tuple[float, list[str]]] = []
    first = levels[0][1]
    # quiet: halfway to the bound when lower is worse, 10% under the budget otherwise
    quiet = first + ((bound or first * 2) - first) / 2 if budget.lower_is_worse else first * 0.9
    cases.append((quiet, []))
    for index, (_, threshold) in enumerate(levels):
        step = threshold * 0.1
        if index + 1 < len(levels):
            step = min(step, abs(levels[index + 1][1] - threshold) / 2)
        value = threshold + sign * step
        if bound is not None and value >= bound:
            value = threshold + (bound - threshold) / 2
        cases.append((value, [sev for sev, _ in levels[: index + 1]]))
    # quiet cases move further to the good side, firing ones further past their budget
    return [(clear_edge(_round(value, sig.unit), sig.unit, sign if fires else -sign), fires)
            for value, fires in cases]


# Where Prometheus' humanize functions change prefix (1 s, 1 ms; 1/s, 1k/s): a value Go
# computes an ulp below one reads "1000ms" where Python's exact prediction reads "1s".
PREFIX_EDGES = frozenset(float(f"1e{3 * k}") for k in range(-8, 9))


def clear_edge(value: float, unit: Unit, away: float) -> float:
    """`value`, moved by 0.1% in direction `away` if it sits on a prefix edge."""
    if unit.whole or value not in PREFIX_EDGES:
        return value
    return float(f"{value * (1 + 0.001 * away):.4g}")


def steps_for(duration: float, step: float) -> int:
    return math.ceil(duration / step - 1e-9)


def expected_alert(sig: ThresholdSignal, service: Service, severity: str, value: float,
                   labels: dict[str, str]) -> ExpectedAlert:
    """The alert promtool must see firing for `value` with result `labels`."""
    threshold = getattr(sig.budget, severity)
    return ExpectedAlert(
        labels={**labels, **alert_labels(service, sig.signal, severity, sig.labels)},
        annotations=_annotations(sig, service, severity, threshold, sig.unit.render(value),
                                 labels),
    )


def build_scenarios(sig: ThresholdSignal, service: Service, step: float) -> list[Scenario]:
    """Quiet, each severity, and (where relevant) too-little-traffic scenarios for one signal.

    Every case is checked one step before `for` elapses and when it has: quiet cases are
    silent at both, firing cases silent and then firing. A signal judged per instance
    (`where` names `{instance}`) puts all its cases in one scenario, each on an instance of
    its own, so promtool proves them all in one test group; the exact set of alerts firing
    at each check still names every case (a quiet instance that fired would be an extra
    alert, a firing one that did not a missing one).
    """
    cases = _cases(sig, service, step)
    if "{instance}" in sig.where and len(cases) > 1:
        relabelled = [on_instance(case, index) for index, case in enumerate(cases)]
        if all(case is not None for case in relabelled):
            return [_together(sig, relabelled)]
    return cases


def _cases(sig: ThresholdSignal, service: Service, step: float, values: bool = True,
           sparse: bool = True) -> list[Scenario]:
    for_steps = steps_for(sig.budget.for_, step)
    onset = sig.onset_steps * step
    fire_at = onset + for_steps * step
    samples = sig.onset_steps + for_steps + 3

    def checks(expected: tuple[ExpectedAlert, ...]) -> tuple[AlertCheck, ...]:
        not_yet = (AlertCheck(fire_at - step, sig.alert),) if for_steps > 0 else ()
        return (*not_yet, AlertCheck(fire_at, sig.alert, expected))

    scenarios = []
    for value, firing in test_values(sig) if values else ():
        synthesis = sig.synthesize(value, samples)
        expected = tuple(expected_alert(sig, service, sev, synthesis.value, synthesis.labels)
                         for sev in firing)
        exprs = ()
        if sig.recording:
            exprs = (ExprCheck(fire_at, sig.recording, ((synthesis.labels, synthesis.value),)),)
        label = "+".join(firing) if firing else "quiet"
        scenarios.append(Scenario(
            name=f"{sig.alert} {label} at {sig.unit.render(synthesis.value)}",
            series=synthesis.series,
            alert_checks=checks(expected),
            expr_checks=exprs,
        ))
    if sig.sparse is not None and sparse:
        worst = severities(sig.budget)[-1][1]
        bad = worst / 2 if sig.budget.lower_is_worse else worst * 2
        synthesis = sig.sparse(bad, samples)
        scenarios.append(Scenario(
            name=f"{sig.alert} quiet with too little traffic to judge",
            series=synthesis.series,
            alert_checks=checks(()),
        ))
    return scenarios


def case_instance(index: int) -> str:
    """The instance label of the `index`-th case of a per-instance signal: host-a:9090 (the
    one every synthesizer writes), host-b:9090, ..."""
    return f"host-{string.ascii_lowercase[index % 26]}{index // 26 or ''}:9090"


def on_instance(case: Scenario, index: int) -> Scenario | None:
    """`case` moved from the synthesized instance to `case_instance(index)`: its series,
    expected labels and annotations, and checked samples; None when a series does not carry
    the synthesized instance (the case cannot be told apart from the others)."""
    old, new = case_instance(0), case_instance(index)
    if not all(f'instance="{old}"' in series.selector for series in case.series):
        return None

    def labels(values: dict[str, str]) -> dict[str, str]:
        return {k: new if k == "instance" and v == old else v for k, v in values.items()}

    def alert(expected: ExpectedAlert) -> ExpectedAlert:
        return ExpectedAlert(labels(expected.labels),
                             {k: v.replace(old, new) for k, v in expected.annotations.items()})

    return Scenario(
        name=f"{case.name} on {new}",
        series=tuple(Series(s.selector.replace(f'instance="{old}"', f'instance="{new}"'),
                            s.values) for s in case.series),
        alert_checks=tuple(AlertCheck(c.eval_time, c.alert, tuple(map(alert, c.expected)))
                           for c in case.alert_checks),
        expr_checks=tuple(ExprCheck(c.eval_time, c.expr,
                                    tuple((labels(found), v) for found, v in c.samples))
                          for c in case.expr_checks),
        interval=case.interval,
    )


def _together(sig: ThresholdSignal, cases: list[Scenario]) -> Scenario:
    together = side_by_side(cases)
    assert together is not None, f"{sig.alert}: cases checked at other times"
    return together


def side_by_side(cases: list[Scenario]) -> Scenario | None:
    """One scenario running `cases` at once, which the caller knows cannot see each
    other's series (other instances, other caches): at each check time, the alerts of
    every case and the samples of every case. None unless every case checks each alert
    at the same times (a case not checked at a time could be firing then)."""
    times: dict[str, set[tuple[float, ...]]] = {}
    for case in cases:
        mine: dict[str, list[float]] = {}
        for check in case.alert_checks:
            mine.setdefault(check.alert, []).append(check.eval_time)
        for alert, at in mine.items():
            times.setdefault(alert, set()).add(tuple(sorted(at)))
    if any(len(found) > 1 for found in times.values()) or \
            any(set(times) != {c.alert for c in case.alert_checks} for case in cases):
        return None
    alerts: dict[tuple[float, str], list[ExpectedAlert]] = {}
    samples: dict[tuple[float, str], list] = {}
    for case in cases:
        for check in case.alert_checks:
            alerts.setdefault((check.eval_time, check.alert), []).extend(check.expected)
        for expr in case.expr_checks:
            samples.setdefault((expr.eval_time, expr.expr), []).extend(expr.samples)
    return Scenario(
        name="; ".join(case.name for case in cases),
        series=tuple(series for case in cases for series in case.series),
        alert_checks=tuple(AlertCheck(at, alert, tuple(expected))
                           for (at, alert), expected in alerts.items()),
        expr_checks=tuple(ExprCheck(at, expr, tuple(found))
                          for (at, expr), found in samples.items()),
        interval=cases[0].interval,
    )


# Series of several signals at once: values → (series, each signal's exact value), or None
Together = Callable[[list[float], int], "tuple[tuple[Series, ...], list[float]] | None"]


def build_together(sigs: list[ThresholdSignal], service: Service, step: float,
                   together: Together, labels: dict[str, str]) -> list[Scenario] | None:
    """The scenarios of signals read from the same series (quantiles of one histogram),
    each level of cases side by side: quiet for all, then each severity just past its
    budget for all, from one set of series (`together`), each alert checked one step before
    its `for` elapses and at it, with its own value; then each signal's too-little-traffic
    case alone (their traffic differs). None when the levels do not line up or `together`
    cannot make the values (the caller then builds each signal's cases apart)."""
    levels = [test_values(sig) for sig in sigs]
    if len({len(level) for level in levels}) != 1 or len({s.onset_steps for s in sigs}) != 1:
        return None
    for_steps = [steps_for(sig.budget.for_, step) for sig in sigs]
    samples = sigs[0].onset_steps + max(for_steps) + 3
    scenarios = []
    for level in range(len(levels[0])):
        made = together([cases[level][0] for cases in levels], samples)
        if made is None:
            return None
        series, exact = made
        names, checks, exprs = [], [], []
        for sig, cases, value, steps in zip(sigs, levels, exact, for_steps, strict=True):
            firing = cases[level][1]
            fire_at = (sig.onset_steps + steps) * step
            expected = tuple(expected_alert(sig, service, sev, value, labels) for sev in firing)
            checks += [*((AlertCheck(fire_at - step, sig.alert),) if steps > 0 else ()),
                       AlertCheck(fire_at, sig.alert, expected)]
            if sig.recording:
                exprs.append(ExprCheck(fire_at, sig.recording, ((labels, value),)))
            names.append(f"{sig.alert} {'+'.join(firing) or 'quiet'} at "
                          f"{sig.unit.render(value)}")
        scenarios.append(Scenario("; ".join(names), series,
                                  tuple(sorted(checks, key=lambda c: c.eval_time)),
                                  tuple(exprs)))
    return scenarios + [s for sig in sigs for s in _cases(sig, service, step, values=False)]


# --- Signals of several modules on one traffic --------------------------------------------
#
# Latency and errors both read the request count: apart, each level of their cases needs a
# test group of its own (the summed rates of one service cannot hold two values at once).
# Built together, one set of series carries both: the histogram's buckets hold the latency
# and its count is split by status code for the error ratio, so one group proves both
# just past the same level. Each module still says what its series are (`Joint.part`);
# the registry only puts the parts side by side (`build_joint`).

# (budgets with the value each should take, events per step, samples, whether to write the
# shared event count) -> (series, each budget's exact value), or None when no series can
# hold those values at once
Part = Callable[[list[tuple[ThresholdSignal, float]], float, int, bool],
                "tuple[tuple[Series, ...], list[float]] | None"]


@dataclass(frozen=True)
class Joint:
    """One module's cases on a shared event count (`traffic`), as a part other modules'
    cases on that count can be written beside, level by level (see `build_joint`), and as
    the scenarios it runs when no other module shares the count (`alone`)."""

    traffic: str  # the shared event count, e.g. ``http_request_duration_seconds_count``
    signals: tuple[ThresholdSignal, ...]
    events: float  # events per step its judged cases need at least
    sparse: tuple[float | None, ...]  # per signal: events per step of its too-little case
    part: Part
    labels: dict[str, str]  # result labels of its values
    step: float
    alone: Callable[[], list[Scenario]]  # built only when no other module shares the count
    splits: bool = False  # its count series split the events (by status): it writes them


def build_joint(joints: list[Joint], service: Service) -> list[Scenario] | None:
    """Scenarios proving every signal of `joints` (modules sharing one event count): per
    level (quiet, then each severity just past its budget) one scenario in which every
    signal takes its value of that level, each alert checked one step before its `for`
    elapses and at it; then the too-little-traffic cases, those with the same traffic
    together. The count is written by the part that splits it (else the first). None when
    the parts cannot hold the values at once or disagree on the step (the caller then runs
    each joint's own scenarios)."""
    if len({joint.step for joint in joints}) != 1 or sum(j.splits for j in joints) > 1 \
            or len({s.onset_steps for j in joints for s in j.signals}) != 1:
        return None
    levels = {sig.alert: test_values(sig) for joint in joints for sig in joint.signals}
    scenarios = []
    for level in range(max(map(len, levels.values()))):
        made = _joint_case(joints, service, max(j.events for j in joints), {
            sig.alert: (levels[sig.alert][level][0], levels[sig.alert][level][1])
            for joint in joints for sig in joint.signals if level < len(levels[sig.alert])})
        if made is None:
            return None
        scenarios.append(made)
    sparse: dict[float, dict[str, tuple[float, None]]] = {}
    for joint in joints:
        for sig, events in zip(joint.signals, joint.sparse, strict=True):
            if events is not None:
                worst = severities(sig.budget)[-1][1]
                bad = worst / 2 if sig.budget.lower_is_worse else worst * 2
                sparse.setdefault(events, {})[sig.alert] = (bad, None)
    for events, wanted in sparse.items():
        made = _joint_case(joints, service, events, wanted)
        if made is None:
            return None
        scenarios.append(made)
    return scenarios


def _joint_case(joints: list[Joint], service: Service, events: float,
                wanted: dict[str, tuple[float, list[str] | None]]) -> Scenario | None:
    """One scenario of the signals named in `wanted` (alert → value and the severities it
    fires, None for a too-little-traffic case: quiet, its value not checked), each module's
    part of the series at `events` per step."""
    present = [j for j in joints if any(sig.alert in wanted for sig in j.signals)]
    writer = next((j for j in present if j.splits), present[0])
    step = joints[0].step
    sigs = [sig for j in present for sig in j.signals if sig.alert in wanted]
    for_steps = {sig.alert: steps_for(sig.budget.for_, step) for sig in sigs}
    samples = sigs[0].onset_steps + max(for_steps.values()) + 3
    series: list[Series] = []
    names, checks, exprs = [], [], []
    for joint in present:
        mine = [sig for sig in joint.signals if sig.alert in wanted]
        made = joint.part([(sig, wanted[sig.alert][0]) for sig in mine], events, samples,
                          joint is writer)
        if made is None:
            return None
        series += made[0]
        for sig, value in zip(mine, made[1], strict=True):
            firing = wanted[sig.alert][1]
            fire_at = (sig.onset_steps + for_steps[sig.alert]) * step
            expected = tuple(expected_alert(sig, service, sev, value, joint.labels)
                             for sev in firing or ())
            checks += [*((AlertCheck(fire_at - step, sig.alert),)
                         if for_steps[sig.alert] > 0 else ()),
                       AlertCheck(fire_at, sig.alert, expected)]
            if firing is None:
                names.append(f"{sig.alert} quiet with too little traffic to judge")
                continue
            if sig.recording:
                exprs.append(ExprCheck(fire_at, sig.recording, ((joint.labels, value),)))
            names.append(f"{sig.alert} {'+'.join(firing) or 'quiet'} at "
                          f"{sig.unit.render(value)}")
    return Scenario("; ".join(names), tuple(series),
                    tuple(sorted(checks, key=lambda c: c.eval_time)), tuple(exprs))
