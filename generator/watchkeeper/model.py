"""Plain data the signal builders return: rules, and the promtool test scenarios proving them.

Builders produce these; ``rules.py`` and ``rule_tests.py`` turn them into YAML documents.
Nothing here does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Recording:
    record: str
    expr: str
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Alert:
    """One alerting rule; the same `name` is used for every severity of one budget."""

    name: str
    expr: str
    for_: float
    labels: dict[str, str]
    annotations: dict[str, str]
    keep_firing_for: float = 0.0


@dataclass(frozen=True)
class Series:
    """One input series of a promtool test, in promtool's expanding notation."""

    selector: str
    values: str


@dataclass(frozen=True)
class ExpectedAlert:
    labels: dict[str, str]
    annotations: dict[str, str]


@dataclass(frozen=True)
class AlertCheck:
    """At `eval_time` (seconds), exactly `expected` alerts named `alert` are firing."""

    eval_time: float
    alert: str
    expected: tuple[ExpectedAlert, ...] = ()


@dataclass(frozen=True)
class ExprCheck:
    """At `eval_time`, `expr` returns exactly these samples (labels, value)."""

    eval_time: float
    expr: str
    samples: tuple[tuple[dict[str, str], float], ...]


@dataclass(frozen=True)
class Scenario:
    """One promtool test group: input series and what must (not) fire when."""

    name: str
    series: tuple[Series, ...]
    alert_checks: tuple[AlertCheck, ...] = ()
    expr_checks: tuple[ExprCheck, ...] = ()
    interval: float | None = None  # seconds between input samples; default: the file's step


@dataclass
class Piece:
    """What one signal contributes to one rule group of one service."""

    group: str
    recordings: list[Recording] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)
    scenarios: list[Scenario] = field(default_factory=list)
