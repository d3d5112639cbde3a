"""Replaying alert rules over history: the rule manager's state machine at every step.

Prometheus evaluates an alerting rule at each tick ``t``; every series the expression returns
is *active*. A new active series becomes *pending* with ``ActiveAt = t`` and turns *firing*
at the first tick with ``t - ActiveAt >= for``. A pending series that is no longer returned is
dropped. A firing one that is no longer returned stays firing while
``t - KeepFiringSince < keep_firing_for`` (``KeepFiringSince`` is the first tick it was
missing, reset whenever it comes back) and is resolved at the first tick past that
(rules/alerting.go, ``AlertingRule.Eval``). :class:`Replay` is that machine, fed with the
result of a range query instead of one instant query per tick; an episode runs from the tick
an alert starts firing to the tick it is resolved.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from watchkeeper.backtest.client import BacktestError, Client, Series
from watchkeeper.backtest.promql import (
    Inliner,
    PromQLError,
    Recording,
    Selector,
    compare,
    factor_budget,
)
from watchkeeper.backtest.source import AlertRule, RuleSet

Key = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Episode:
    """One firing episode of one alert instance; times in Unix milliseconds.

    ``end`` is the first evaluation at which the alert was no longer firing (Prometheus'
    ``ResolvedAt``), or the end of the range when it was still firing (``open``).
    """

    rule: AlertRule
    labels: Key
    start: int
    end: int
    open: bool = False

    @property
    def duration(self) -> int:
        return self.end - self.start


@dataclass
class _Instance:
    active_at: int
    firing_since: int | None = None
    keep_firing_since: int | None = None


@dataclass
class Replay:
    """The rule manager's state for one alerting rule; call :meth:`tick` in time order."""

    for_ms: int
    keep_firing_for_ms: int
    active: dict[Key, _Instance] = field(default_factory=dict)
    closed: list[tuple[Key, int, int]] = field(default_factory=list)

    def tick(self, now: int, present: Iterable[Key]) -> None:
        present = set(present)
        for key in present:
            if key not in self.active:
                self.active[key] = _Instance(active_at=now)
        for key, alert in list(self.active.items()):
            if key in present:
                alert.keep_firing_since = None
            else:
                keep = False
                if alert.firing_since is not None and self.keep_firing_for_ms > 0:
                    if alert.keep_firing_since is None:
                        alert.keep_firing_since = now
                    keep = now - alert.keep_firing_since < self.keep_firing_for_ms
                if not keep:
                    if alert.firing_since is not None:
                        self.closed.append((key, alert.firing_since, now))
                    del self.active[key]
                    continue
            if alert.firing_since is None and now - alert.active_at >= self.for_ms:
                alert.firing_since = now

    def firing(self) -> Iterator[tuple[Key, int]]:
        for key, alert in self.active.items():
            if alert.firing_since is not None:
                yield key, alert.firing_since


def alert_key(metric: dict[str, str], rule: AlertRule) -> Key:
    """The alert's identity: the series' labels without ``__name__``, the rule's labels set
    over them (alertname is the rule's name and not repeated here)."""
    labels = {k: v for k, v in metric.items() if k != "__name__"}
    for name, value in rule.labels:
        if value:
            labels[name] = value
        else:
            labels.pop(name, None)
    return tuple(sorted(labels.items()))


@dataclass(frozen=True)
class Window:
    """The range under review, in Unix milliseconds on the step grid."""

    start: int
    end: int
    step: int

    @classmethod
    def of(cls, start: float, end: float, step: float) -> Window:
        """Align ``start``/``end`` (seconds) down to multiples of ``step`` so that every
        server (VictoriaMetrics aligns range queries too) evaluates the same ticks."""
        step_ms = round(step * 1000)
        if step_ms < 1000:
            raise BacktestError(f"--step must be at least 1s, got {step}s")
        first = math.ceil(start * 1000 / step_ms) * step_ms
        last = math.floor(end * 1000 / step_ms) * step_ms
        if last <= first:
            raise BacktestError("the range is empty: --from must be at least one --step "
                                "before --to")
        return cls(first, last, step_ms)

    def preroll(self, rule: AlertRule) -> int:
        """Ticks to evaluate before the range so alerts already pending or kept firing at its
        start have their true state (as if the rules had been running before it)."""
        hold = round((rule.for_ + rule.keep_firing_for) * 1000)
        return math.ceil(hold / self.step) * self.step


@dataclass(frozen=True)
class Member:
    """An alert answered by a shared query: its samples are those passing ``op budget``
    (every sample when op is None)."""

    rule: AlertRule
    op: str | None = None
    budget: float = 0.0

    def keeps(self, value: float) -> bool:
        return self.op is None or compare(value, self.op, self.budget)


@dataclass
class Query:
    expr: str
    members: list[Member]


@dataclass
class Plan:
    """What to query: each alert with its expression rewritten onto raw series, and the
    queries answering them (alerts differing only in their budget share one)."""

    window: Window
    alerts: list[tuple[AlertRule, str]]
    raw: dict[str, Selector]
    recordings: dict[str, list[Recording]]
    queries: list[Query] = field(default_factory=list)


def plan(rules: RuleSet, window: Window, services: Iterable[str] = ()) -> Plan:
    wanted = set(services)
    unknown = wanted - set(rules.alerts)
    if unknown:
        raise BacktestError(f"no service named {', '.join(sorted(unknown))} in the spec "
                            f"(services: {', '.join(sorted(rules.alerts))})")
    inliner = Inliner(rules.recordings, step=window.step / 1000)
    alerts, queries = [], {}
    for service, service_alerts in rules.alerts.items():
        if wanted and service not in wanted:
            continue
        for rule in service_alerts:
            try:
                alerts.append((rule, inliner.inline(rule.expr)))
                factored = factor_budget(rule.expr)
                if factored is None:
                    expr, member = alerts[-1][1], Member(rule)
                else:
                    expr, member = inliner.inline(factored[0]), Member(rule, *factored[1:])
            except PromQLError as error:
                raise BacktestError(f"alert {rule.name} of {service}: {error}") from None
            queries.setdefault(expr, Query(expr, [])).members.append(member)
    return Plan(window, alerts, inliner.raw, rules.recordings, list(queries.values()))


def check_data(client: Client, plan: Plan) -> None:
    """Refuse to report silence that only means missing data: every raw series the rules
    read must have data somewhere in the range (one problem per missing series)."""
    seen: dict[str, tuple[str, list[str]]] = {}
    for selector in plan.raw.values():
        if not selector.name:
            continue
        matchers = selector.equality_matchers()
        lookup = selector.name + "{" + ",".join(map(str, matchers)) + "}"
        where = ",".join(f"{m.label}={m.value}" for m in matchers)
        seen.setdefault(lookup, (selector.name, [where] if where else []))
    longest = max((plan.window.preroll(rule) for rule, _ in plan.alerts), default=0)
    start = plan.window.start - longest
    lookups = sorted(seen.items())
    with ThreadPoolExecutor(4) as pool:
        found = list(pool.map(lambda item: client.has_series(item[0], start, plan.window.end),
                              lookups))
    problems = [f"`{name}` has no data{f' for {where[0]}' if where else ''} in this range"
                for (_, (name, where)), present in zip(lookups, found, strict=True)
                if not present]
    if problems:
        raise BacktestError("\n".join(problems))


def replay(client: Client, window: Window, query: Query) -> list[Episode]:
    """Episodes of the alerting rules one query answers, over the window (clipped to it).

    The query starts early enough for the member with the longest ``for`` +
    ``keep_firing_for``; each member's machine starts ticking at its own pre-roll, so it sees
    exactly the ticks it would have seen queried alone.
    """
    machines = [Replay(round(m.rule.for_ * 1000), round(m.rule.keep_firing_for * 1000))
                for m in query.members]
    starts = [window.start - window.preroll(m.rule) for m in query.members]
    first = query.members[0].rule
    what = f"the query of alert {first.name} ({first.service})"
    for chunk, series in client.query_range(query.expr, min(starts), window.end, window.step,
                                            what):
        for member, machine, begin in zip(query.members, machines, starts, strict=True):
            by_time = _by_time(series, member)
            for now in chunk.times():
                if now >= begin:
                    machine.tick(now, by_time.get(now, ()))
    episodes = []
    for member, machine in zip(query.members, machines, strict=True):
        rule = member.rule
        episodes += [Episode(rule, key, begin, end) for key, begin, end in machine.closed]
        episodes += [Episode(rule, key, begin, window.end, open=True)
                     for key, begin in machine.firing()]
    return sorted((Episode(e.rule, e.labels, max(e.start, window.start), e.end, e.open)
                   for e in episodes if e.end > window.start or e.open),
                  key=lambda e: (e.start, e.labels))


def _by_time(series: list[Series], member: Member) -> dict[int, list[Key]]:
    by_time: dict[int, list[Key]] = {}
    for metric, values in series:
        key = alert_key(metric, member.rule)
        for timestamp, value in values:
            if member.keeps(value):
                by_time.setdefault(timestamp, []).append(key)
    return by_time


def run(client: Client, plan: Plan, workers: int = 4) -> list[Episode]:
    """Every alert's episodes, a few queries at a time (the server does the work)."""
    with ThreadPoolExecutor(max(1, workers)) as pool:
        results = pool.map(lambda query: replay(client, plan.window, query), plan.queries)
        return [episode for episodes in results for episode in episodes]
