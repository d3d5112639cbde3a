"""Turn the scenarios signals build into promtool unit-test files (`promtool test rules`)."""

from __future__ import annotations

import math

from watchkeeper.model import AlertCheck, ExprCheck, Piece, Scenario, Service
from watchkeeper.promql import matchers
from watchkeeper.signals.common import test_step
from watchkeeper.units import prometheus_duration


def _alert_test(check: AlertCheck) -> dict:
    return {
        "eval_time": prometheus_duration(check.eval_time),
        "alertname": check.alert,
        "exp_alerts": [
            {"exp_labels": dict(alert.labels), "exp_annotations": dict(alert.annotations)}
            for alert in check.expected
        ],
    }


# promtool 2.42 compares sample values exactly, and float sums in Go and Python differ in
# the last bits; both sides are therefore rounded to a micro-unit with PromQL's round(),
# whose arithmetic Python reproduces bit for bit.
ROUND_TO = 1e-06


def promql_round(value: float, to_nearest: float = ROUND_TO) -> float:
    """Python twin of PromQL's ``round(v, to_nearest)``."""
    inverse = 1.0 / to_nearest
    return math.floor(value * inverse + 0.5) / inverse


def _expr_test(check: ExprCheck) -> dict:
    return {
        "expr": f"round({check.expr}, {ROUND_TO!r})",
        "eval_time": prometheus_duration(check.eval_time),
        "exp_samples": [
            {"labels": matchers(dict(sorted(labels.items()))), "value": promql_round(value)}
            for labels, value in check.samples
        ],
    }


def _test_group(scenario: Scenario, interval: str) -> dict:
    group: dict = {
        "name": scenario.name,
        "interval": prometheus_duration(scenario.interval) if scenario.interval else interval,
        "input_series": [{"series": s.selector, "values": s.values} for s in scenario.series],
    }
    if scenario.alert_checks:
        group["alert_rule_test"] = [_alert_test(check) for check in scenario.alert_checks]
    if scenario.expr_checks:
        group["promql_expr_test"] = [_expr_test(check) for check in scenario.expr_checks]
    return group


def test_file(service: Service, groups: list[Piece], rule_files: list[str]) -> dict:
    """The YAML document of a promtool test file proving `groups`' alerts, loading only
    `rule_files`, at the step the groups' scenarios were built for."""
    steps = {group.test_step for group in groups if group.scenarios} or {None}
    assert len(steps) == 1, "scenarios built for different steps need separate test files"
    interval = prometheus_duration(steps.pop() or test_step(service))
    return {
        "rule_files": rule_files,
        "evaluation_interval": interval,
        "tests": [_test_group(s, interval) for group in groups for s in group.scenarios],
    }
