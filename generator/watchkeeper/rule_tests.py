"""Turn the scenarios signals build into promtool unit-test files (`promtool test rules`)."""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import NamedTuple, TypeVar

from watchkeeper.model import AlertCheck, ExprCheck, Piece, Scenario, Series, Service
from watchkeeper.promql import matchers
from watchkeeper.signals.common import test_step
from watchkeeper.units import prometheus_duration
from watchkeeper.writers import emit_entry, open_list, value_text

T = TypeVar("T")


def _alert_test(check: AlertCheck) -> str:
    out: list[str] = []
    out.append(f"  - eval_time: {value_text(prometheus_duration(check.eval_time), '    ')}\n"
               f"    alertname: {value_text(check.alert, '    ')}\n")
    open_list(out, "    exp_alerts", check.expected)
    for alert in check.expected:
        emit_entry(out, "    - ", "exp_labels", alert.labels, "      ")
        emit_entry(out, "      ", "exp_annotations", alert.annotations, "      ")
    return "".join(out)


# promtool 2.42 compares sample values exactly, and float sums in Go and Python differ in
# the last bits; both sides are therefore rounded to a micro-unit with PromQL's round(),
# whose arithmetic Python reproduces bit for bit.
ROUND_TO = 1e-06


def promql_round(value: float, to_nearest: float = ROUND_TO) -> float:
    """Python twin of PromQL's ``round(v, to_nearest)``."""
    inverse = 1.0 / to_nearest
    return math.floor(value * inverse + 0.5) / inverse


def _expr_test(check: ExprCheck) -> str:
    out: list[str] = []
    out.append(f"  - expr: {value_text(f'round({check.expr}, {ROUND_TO!r})', '    ')}\n"
               f"    eval_time: {value_text(prometheus_duration(check.eval_time), '    ')}\n")
    open_list(out, "    exp_samples", check.samples)
    for labels, value in check.samples:
        out.append(f"    - labels: {value_text(matchers(dict(sorted(labels.items()))), '      ')}\n"
                   f"      value: {value_text(promql_round(value), '      ')}\n")
    return "".join(out)


def _series(series: Series) -> str:
    return (f"  - series: {value_text(series.selector, '    ')}\n"
            f"    values: {value_text(series.values, '    ')}\n")


def made_directly(thing: T, make: Callable[[T], str]) -> str:
    return make(thing)


# Gives the text `make` makes of a thing (a series or check): `made_directly`, or the text made
# before of that same object (`parts.Parts.leaf`).
Leaf = Callable[[T, Callable[[T], str]], str]


def _test_group(scenario: Scenario, interval: str, out: list[str], leaf: Leaf) -> None:
    """One entry of `tests:`, written straight from the scenario (no intermediate dicts:
    test files are about half of the YAML generated; see `writers.value_text`), each
    series and check as `leaf` gives its text."""
    every = prometheus_duration(scenario.interval) if scenario.interval else interval
    out.append(f"- name: {value_text(scenario.name, '  ')}\n"
               f"  interval: {value_text(every, '  ')}\n")
    open_list(out, "  input_series", scenario.series)
    out.extend(leaf(s, _series) for s in scenario.series)
    if scenario.alert_checks:
        out.append("  alert_rule_test:\n")
        out.extend(leaf(check, _alert_test) for check in scenario.alert_checks)
    if scenario.expr_checks:
        out.append("  promql_expr_test:\n")
        out.extend(leaf(check, _expr_test) for check in scenario.expr_checks)


def _text_list(key: str, items: Sequence[str], out: list[str]) -> None:
    """A top-level list of strings, as `to_yaml` writes it."""
    open_list(out, key, items)
    out.extend(f"- {value_text(item, '')}\n" for item in items)


def test_file(service: Service, groups: list[Piece], rule_files: list[str],
              rules: Sequence[Piece] | None = None, header: str = "",
              leaf: Leaf = made_directly, packed: bool = False) -> str:
    """The text of a promtool test file (after `header`) proving `groups`' alerts, loading
    only `rule_files` (whose rules are `rules`; default: `groups`), at the step the groups'
    scenarios were built for. Independent scenarios share a test group (see `pack`), unless
    `packed`: the scenarios are test groups `pack` made with these same `rules` (in its
    order), which `pack` would give back as they are (see `lanes_apart`)."""
    steps = {group.test_step for group in groups if group.scenarios} or {None}
    assert len(steps) == 1, "scenarios built for different steps need separate test files"
    interval = prometheus_duration(steps.pop() or test_step(service))
    scenarios = [s for group in groups for s in group.scenarios]
    loaded = list(groups if rules is None else rules)
    out = [header]
    _text_list("rule_files", rule_files, out)
    out.append(f"evaluation_interval: {value_text(interval, '')}\n")
    if any(piece.needs for piece in loaded):
        # promtool evaluates the groups of its rule files in no fixed order unless told:
        # a group reading another's recordings (`Piece.needs`) then saw them one step late
        # in some runs. The rule order puts every group after the ones it needs.
        _text_list("group_eval_order", [piece.group for piece in loaded], out)
    tests = scenarios if packed else pack(scenarios, loaded)
    open_list(out, "tests", tests)
    for scenario in tests:
        _test_group(scenario, interval, out, leaf)
    return "".join(out)


# --- Sharing test groups ---------------------------------------------------------------
#
# promtool opens a fresh TSDB, loads the rule files and evaluates every rule at every step
# for each test group: ~8 ms plus ~60 µs per alerting rule and step on this machine, so
# fifty groups of seven steps cost far more than the same cases run side by side. Two
# scenarios can share a group when neither's series reach what the other checks: their
# outcomes are then exactly what each had alone, and each check still lists every alert
# it expects by label, so nothing is asserted more weakly.

_NAME = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
EVERYTHING = "*"  # what an alert reads when its rule is not known here


def reads(rules: Iterable[Piece]) -> dict[str, frozenset[str]]:
    """Alert or recording name → every name its expression reads, through recordings
    (an over-estimate: label names and function names come along, which only makes
    sharing rarer).

    Each group's closures are computed once (a service's test files pack the same groups
    in several combinations) and merged: that is exact when no name is defined by two of
    the groups and no group reads a name another defines (groups keep to themselves);
    otherwise everything is closed together."""
    rules = list(rules)
    parts = [_piece_reads(_rules_key(piece)) for piece in rules]
    if len(parts) == 1:
        return dict(parts[0][0])
    merged: dict[str, frozenset[str]] = {}
    for closed, _ in parts:
        merged.update(closed)
    if sum(len(closed) for closed, _ in parts) == len(merged) and all(
            read.isdisjoint(other) for i, (_, read) in enumerate(parts)
            for j, (other, _) in enumerate(parts) if i != j):
        return merged
    return _closed_reads([pair for piece in rules for pair in _rules_key(piece)])


def _rules_key(piece: Piece) -> tuple[tuple[str, str], ...]:
    return (*((r.record, r.expr) for r in piece.recordings),
            *((a.name, a.expr) for a in piece.alerts))


@functools.lru_cache(maxsize=64)  # a service's groups, for the test files of that service
def _piece_reads(rules: tuple[tuple[str, str], ...]
                 ) -> tuple[dict[str, frozenset[str]], frozenset[str]]:
    """The closures of one group's rules, and every name they read."""
    closed = _closed_reads(rules)
    return closed, frozenset().union(*closed.values())


def _closed_reads(rules: Iterable[tuple[str, str]]) -> dict[str, frozenset[str]]:
    direct: dict[str, set[str]] = {}
    for name, expr in rules:
        direct.setdefault(name, set()).update(_names(expr))
    closed: dict[str, frozenset[str]] = {}
    for name in direct:
        _close(name, direct, closed, set())
    return closed


def _close(name: str, direct: dict[str, set[str]], closed: dict[str, frozenset[str]],
           open_: set[str]) -> frozenset[str]:
    """Everything `name` reads, directly or through the recordings it reads, each
    recording's closure computed once (rules read each other in chains, not in circles;
    a circle falls back to a plain search, which follows it)."""
    done = closed.get(name)
    if done is not None:
        return done
    if name in open_:
        raise _Circle
    outermost = not open_
    open_.add(name)
    seen: set[str] = set()
    try:
        for read in direct[name]:
            seen.add(read)
            if read in direct:
                seen |= _close(read, direct, closed, open_)
    except _Circle:
        if not outermost:
            raise
        seen = _search(name, direct)
    finally:
        open_.discard(name)
    closed[name] = result = frozenset(seen)
    return result


class _Circle(Exception):
    """A recording reads itself through others (see `_close`)."""


def _search(name: str, direct: dict[str, set[str]]) -> set[str]:
    seen: set[str] = set()
    todo = [name]
    while todo:
        for read in direct.get(todo.pop(), ()):
            if read not in seen:
                seen.add(read)
                todo.append(read)
    return seen


@functools.lru_cache(maxsize=4096)  # the same expressions are read by several test files
def _names(expr: str) -> tuple[str, ...]:
    return tuple(_NAME.findall(expr))


def _metric(selector: str) -> str:
    return selector.split("{", 1)[0]


@dataclass
class _Shared:
    """Scenarios packed into one test group, with what they write and read."""

    members: list[Scenario] = field(default_factory=list)
    series: dict[str, str] = field(default_factory=dict)  # selector → values
    metrics: dict[str, str] = field(default_factory=dict)  # selector → its metric name
    read: set[str] = field(default_factory=set)
    checked: set[str] = field(default_factory=set)  # alerts and expressions checked
    interval: float | None = None

    def fits(self, scenario: Scenario, read: frozenset[str], checked: set[str]) -> bool:
        """Whether `scenario` (reading `read`, checking `checked`) can join: see `pack`."""
        if not self.members:
            return True
        if scenario.interval != self.interval or not self.checked.isdisjoint(checked):
            return False
        new = set()
        for series in scenario.series:
            values = self.series.get(series.selector)
            if values is None:
                new.add(_metric(series.selector))
            elif values != series.values:
                return False
        if new and (EVERYTHING in self.read or not self.read.isdisjoint(new)):
            return False
        mine = {s.selector for s in scenario.series}
        old = {metric for sel, metric in self.metrics.items() if sel not in mine}
        return not (old and (EVERYTHING in read or not read.isdisjoint(old)))

    def add(self, scenario: Scenario, read: frozenset[str], checked: set[str]) -> None:
        self.members.append(scenario)
        self.interval = scenario.interval
        for series in scenario.series:
            self.series[series.selector] = series.values
            if series.selector not in self.metrics:
                self.metrics[series.selector] = _metric(series.selector)
        self.read |= read
        self.checked |= checked


def _checked(scenario: Scenario) -> set[str]:
    return {check.alert for check in scenario.alert_checks} | \
        {f"expr:{check.expr}" for check in scenario.expr_checks}


def _read_by(scenario: Scenario, known: dict[str, frozenset[str]]) -> frozenset[str]:
    """Every name the checks of `scenario` read (EVERYTHING for an unknown alert)."""
    read: set[str] = set()
    for check in scenario.alert_checks:
        read |= known.get(check.alert, {EVERYTHING})
    for check in scenario.expr_checks:
        for name in _names(check.expr):
            read.add(name)
            read |= known.get(name, frozenset())
    return frozenset(read)


def pack(scenarios: Sequence[Scenario], rules: Iterable[Piece]) -> list[Scenario]:
    """`scenarios` packed first-fit into as few as possible, each a test group whose
    members write no series another member's checks read (series written by two members
    must be the same), check no alert or expression another checks, and share an input
    interval. Order is kept within and across groups."""
    return [_merge(group.members) for group in _pack(scenarios, reads(rules))]


def _pack(scenarios: Iterable[Scenario], known: dict[str, frozenset[str]]) -> list[_Shared]:
    """`pack`'s test groups, not yet merged into scenarios: the estimates of `layout` and
    `own_part` need only their steps (`_lane_steps`)."""
    groups: list[_Shared] = []
    for scenario in scenarios:
        read, checked = _read_by(scenario, known), _checked(scenario)
        group = next((g for g in groups if g.fits(scenario, read, checked)), None)
        if group is None:
            group = _Shared()
            groups.append(group)
        group.add(scenario, read, checked)
    return groups


def _merge(members: list[Scenario]) -> Scenario:
    if len(members) == 1:
        return members[0]
    series = {s.selector: s for member in members for s in member.series}
    return Scenario(
        name="; ".join(member.name for member in members),
        series=tuple(series.values()),
        alert_checks=tuple(sorted((c for m in members for c in m.alert_checks),
                                  key=lambda check: check.eval_time)),
        expr_checks=tuple(sorted((c for m in members for c in m.expr_checks),
                                 key=lambda check: check.eval_time)),
        interval=members[0].interval,
    )


# --- Sharing test files ------------------------------------------------------------------
#
# Each test group costs promtool a fixed amount (a fresh TSDB, the listed rules parsed:
# measured about as much as a hundred rule evaluations) plus every listed rule at every
# step. Rule groups whose tests run at one step can share a test file: their scenarios
# then share test groups too (their series and alerts are apart), group i of one section
# beside group i of the others, each paying for the rules of all. That pays when the
# sections have about as many groups of about as many steps, and not for a section with
# one group and many rules (the runtime gauges): `layout` merges only what the estimate
# says is cheaper.

FIXED_COST = 100.0  # a test group's fixed cost, in rule evaluations (see above)


def _lane_steps(group: _Shared, step: float) -> float:
    """The steps promtool evaluates for a packed test group (as for its merged scenario:
    its members share their interval): up to its last check."""
    last = max((c.eval_time for member in group.members
                for checks in (member.alert_checks, member.expr_checks) for c in checks),
               default=0.0)
    return last / (group.interval or step) + 1


@dataclass
class _File:
    """A test file being laid out: its groups, the steps of each of its test groups (lane
    i: group i of every member, side by side) and the rules it lists."""

    members: list[Piece]
    lanes: list[float]
    rules: int

    def cost(self) -> float:
        return sum(FIXED_COST + steps * self.rules for steps in self.lanes)

    def joined(self, other: _File) -> _File:
        width = max(len(self.lanes), len(other.lanes))
        lanes = [max(a, b) for a, b in zip(self.lanes + [0.0] * (width - len(self.lanes)),
                                           other.lanes + [0.0] * (width - len(other.lanes)),
                                           strict=True)]
        return _File(self.members + other.members, lanes, self.rules + other.rules)


# What `estimate` gives: `layout` may be given a function returning one made before.
Estimate = _File


def layout(groups: Sequence[Piece], step: float,
           estimate_of: Callable[[Piece, float], Estimate] | None = None
           ) -> list[list[Piece]]:
    """`groups` with scenarios, in test files: each group joins the earlier file of the
    same test step where that saves the most estimated promtool work, or starts one.
    The estimate packs each group's scenarios alone and puts its i-th test group beside
    the i-th of the file's (as `pack` does when nothing is shared between them). `step`
    is the service's test step (for `Piece.test_step` None); `estimate_of` (default
    `estimate`) may give a held group's estimate made before (parts.Parts)."""
    estimate_of = estimate_of or estimate
    files: list[_File] = []
    for group in groups:
        if not group.scenarios:
            continue
        at = group.test_step or step
        # the same declared step (a leak group's own step may equal the default one, but
        # its scenarios are built apart: see `test_file`)
        same = [f for f in files if f.members[0].test_step == group.test_step]
        if not same:  # nothing to join: no need to estimate
            files.append(_File([group], [], 0))
            continue
        alone = estimate_of(group, at)  # may be shared: changed only through a copy
        alone = _File(list(alone.members), list(alone.lanes), alone.rules)
        best, saving = None, 0.0
        for candidate in same:
            if not candidate.lanes:
                candidate.lanes, candidate.rules = estimate_of(candidate.members[0], at).lanes, \
                    _rules(candidate.members[0])
            saved = candidate.cost() + alone.cost() - candidate.joined(alone).cost()
            if saved > saving:
                best, saving = candidate, saved
        if best is None:
            files.append(alone)
        else:
            files[files.index(best)] = best.joined(alone)
    return [f.members for f in files]


def _rules(group: Piece) -> int:
    return len(group.recordings) + len(group.alerts)


def estimate(group: Piece, step: float) -> Estimate:
    """`group`'s scenarios packed alone: the steps of each test group, and its rules
    (never changed by `layout`, which joins copies: see `_File.joined`)."""
    return _File([group], [_lane_steps(g, step) for g in _pack(group.scenarios, reads([group]))],
                 _rules(group))


def own_part(group: Piece, checked: Sequence[Piece], step: float) -> Piece | None:
    """The scenarios of `group` that check none of the other `checked` groups' rules (a
    leak's sawtooth, beside its climb that also checks the static budget), as a piece of
    their own to test in a file listing only `group`'s rules, when that saves estimated
    promtool work (they then skip the other groups' rules at every step); else None."""
    others = {a.name for g in checked if g is not group for a in g.alerts} | \
        {r.record for g in checked if g is not group for r in g.recordings}
    if not others:
        return None
    own = [s for s in group.scenarios if not ({c.alert for c in s.alert_checks} & others)
           and not any(name in others for c in s.expr_checks for name in _NAME.findall(c.expr))]
    if not own or len(own) == len(group.scenarios):
        return None
    at = group.test_step or step
    rest = [s for s in group.scenarios if s not in own]
    everything = sum(_rules(g) for g in checked)
    known = reads(checked)

    def work(scenarios: list[Scenario], rules: int) -> float:
        return sum(FIXED_COST + _lane_steps(g, at) * rules for g in _pack(scenarios, known))

    split = work(own, _rules(group)) + work(rest, everything)
    return replace(group, scenarios=own) if split < work(group.scenarios, everything) else None


# --- Test groups apart from a shared file ------------------------------------------------
#
# A test file shared by several rule groups lists all their rules, and promtool evaluates
# each at every step of every test group, also of a test group whose checks read only
# some of them (the bench's p99 too-little-traffic case, alone in its lane: 11 of 34
# rules). Such test groups go to a file listing only the rule groups they read.


class Lane(NamedTuple):
    """Test groups of a shared test file whose checks read the same rule groups: what
    `lanes_apart` sorts the file's test groups into, each tested in a file listing only
    `reading` (or given to the `host`'s file)."""

    scenarios: list[Scenario]  # the test groups, each merged into one scenario
    reading: list[Piece]  # the rule groups their checks read, in rule order


def lanes_apart(members: Sequence[Piece], checked: Sequence[Piece]) -> list[Lane]:
    """The test groups `members`' scenarios pack into (see `pack`), by the `checked` rule
    groups they read (those defining an alert they check or a name they read, through
    recordings), each set with its test groups: the set of every group first, then the
    others in the order their first test group comes; sets without test groups left out.
    A test group checking an alert not known here, or whose groups' rules read another
    group's (`Piece.needs`), reads every group.

    `pack` of the set of every group's test groups with the rules of `checked` gives them
    back as they are (so `test_file` need not pack them again: `packed`). By induction
    over them in order: test group j's first member x did not fit any earlier test group
    i as it was then (first fit), and whatever kept it out still does with i's members
    since and the rest of j's: `_Shared.fits` only loses as a group gains members (its
    reads, checks and series only grow; a series x writes that i lacked then is never
    added to i later, as i already read its metric; a member of j writing one of i's
    series that x reads would not have fitted beside x), and the reads and checks of a
    merged scenario hold its members'. So each is alone in a group, merged as it was.
    Not so for the other sets: their rules are fewer, so reads through recordings may be
    fewer too; `test_file` packs those again."""
    defined = [{a.name for a in g.alerts} | {r.record for r in g.recordings} for g in checked]
    every = tuple(range(len(checked)))
    sets: dict[tuple[int, ...], list[Scenario]] = {every: []}
    # `pack`, each test group with what its members read and check: a merged scenario's
    # checks are its members', and what checks read is a union over them
    for group in _pack([s for g in members for s in g.scenarios], reads(checked)):
        names = group.read | group.checked
        need = every if EVERYTHING in names else tuple(
            i for i, names_of in enumerate(defined) if not names_of.isdisjoint(names))
        if any(checked[i].needs for i in need):  # its rules read another group's
            need = every
        sets.setdefault(need or every, []).append(_merge(group.members))
    return [Lane(scenarios, [checked[i] for i in key]) for key, scenarios in sets.items()
            if scenarios]


def host(files: Sequence[Sequence[Piece]], checked: Sequence[Sequence[Piece]]) -> int | None:
    """The test file (index into `layout`'s `files`, whose rule groups are `checked`) that
    takes the test groups `lanes_apart` sets apart from a shared file of the same step,
    instead of a file of their own: a file of one rule group checking only its own rules
    (none read another's: no `Piece.needs`), the one with fewest rules. promtool starts a
    process per test file (~16 ms of CPU) but evaluates a listed rule for ~60 µs a step: the
    bench's p99 too-little-traffic case (11 rules, 7 steps) costs less beside the runtime
    test group, whose series and checks it shares none of (`pack` then merges them, each
    check listing every alert it expects, so nothing is asserted more weakly). None: no
    such file, or no shared file of its step to take test groups from."""
    candidates = [i for i, members in enumerate(files) if len(members) == 1
                  and len(checked[i]) == 1 and not members[0].needs
                  and any(gives_to(other, members) for other in files)]
    return min(candidates, key=lambda i: _rules(files[i][0]), default=None)


def gives_to(members: Sequence[Piece], hosting: Sequence[Piece]) -> bool:
    """Whether the test file of `members` gives its lanes apart to the `host`'s file of
    `hosting`: it is shared by several groups (only those have lanes apart) and runs at the
    host's test step (one test file runs at one step)."""
    return len(members) > 1 and members[0].test_step == hosting[0].test_step
