"""Fault scenarios against the running chain, and what each one records.

A :class:`Scenario` says which alerts, as (service, signal, severity), must fire in the rule
evaluator (``/api/v1/alerts`` of Prometheus or vmalert) *and* reach the webhook, which must fire
there but be inhibited in Alertmanager (never notified while the fault lasts), and which other
signals may fire as honest side effects (slow queries also slow requests down). Everything else
firing, or notified, fails the scenario. After the fault is removed every alert must resolve and
the webhook must receive the resolved notifications.

Times are measured, never asserted beyond the generous timeouts that define "fires".
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import quote

import servers
from webhook import Notified, WebhookReceiver

Key = tuple[str, str, str]  # (service, signal, severity); signal "slo:<name>" for an SLO
POLL = 0.5
CHECKED: list[tuple[str, Outcome]] = []  # by the running test; conftest moves them to its report


def require(*commands: str) -> None:
    """Fail (not skip) when a server binary is missing: CI must run these tests."""
    import pytest

    if missing := [c for c in commands if shutil.which(c) is None]:
        pytest.fail(f"missing {', '.join(missing)}: run scripts/install-test-deps.sh")


def key_of(labels: dict[str, str]) -> Key:
    """(service, signal, severity); an SLO's alerts (label ``slo``) as signal ``slo:<name>``,
    so a latency SLO's page is told apart from the static latency budget's."""
    return Notified(0, "", "", labels).key()


def fmt(keys: set[Key] | list[Key]) -> str:
    return ", ".join("/".join(k) for k in sorted(keys)) or "nothing"


@dataclass
class Chain:
    """Reads the rule evaluator's and Alertmanager's APIs and the webhook's record."""

    evaluator_url: str
    alertmanager_url: str
    webhook: WebhookReceiver
    query_url: str = ""  # PromQL API; the evaluator's own when empty (vmalert has none)
    rules: list[dict] | None = None  # the evaluator's alerting rules, read once

    def evaluator_alerts(self) -> list[dict]:
        status, body = servers.get(self.evaluator_url + "/api/v1/alerts", timeout=5)
        if status != 200:
            raise RuntimeError(f"/api/v1/alerts answered {status}: {body[:300]}")
        return json.loads(body)["data"]["alerts"] or []  # vmalert says null for none

    def firing(self) -> dict[Key, float]:
        """Firing keys -> when they started firing by the evaluator's own clock (the start of
        pending plus the rule's ``for``), so polling delays do not count."""
        firing: dict[Key, float] = {}
        for alert in self.evaluator_alerts():
            if alert["state"] == "firing":
                since = _epoch(alert["activeAt"]) + self.for_seconds(alert["labels"])
                k = key_of(alert["labels"])
                firing[k] = min(firing.get(k, since), since)
        return firing

    def for_seconds(self, labels: dict[str, str]) -> float:
        """The ``for`` of the rule that produced an alert (``duration`` in /api/v1/rules)."""
        if self.rules is None:
            _, body = servers.get(self.evaluator_url + "/api/v1/rules", timeout=5)
            self.rules = [r for g in json.loads(body)["data"]["groups"] for r in g["rules"]
                          if r.get("type") == "alerting"]
        for rule in self.rules:
            if rule["name"] == labels.get("alertname") and all(
                    labels.get(name) == value for name, value in rule["labels"].items()):
                return float(rule.get("duration", 0))
        return 0.0

    def alertmanager_alerts(self) -> list[dict]:
        status, body = servers.get(self.alertmanager_url + "/api/v2/alerts", timeout=5)
        if status != 200:
            raise RuntimeError(f"/api/v2/alerts answered {status}: {body[:300]}")
        return json.loads(body)

    def suppressed(self) -> set[Key]:
        """Keys Alertmanager holds back because another alert inhibits them."""
        return {key_of(a["labels"]) for a in self.alertmanager_alerts()
                if a["status"]["state"] == "suppressed" and a["status"]["inhibitedBy"]}

    def query(self, expr: str) -> list[dict]:
        base = self.query_url or self.evaluator_url
        _, body = servers.get(f"{base}/api/v1/query?query={quote(expr)}")
        return json.loads(body)["data"]["result"]

    def notified(self, since: float, status: str = "firing") -> dict[Key, float]:
        """First time each key was notified with ``status`` since ``since`` (seconds after)."""
        first: dict[Key, float] = {}
        for entry in self.webhook.since(since):
            if entry.status == status:
                first.setdefault(entry.key(), entry.at - since)
        return first

    def wait_scraped(self, exprs: list[str], timeout: float = 60.0) -> None:
        """Until each expression has a result: targets scraped and rules evaluated at least
        once, so an ``absent()`` of the very first evaluation is not taken for an incident."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(self.query(expr) for expr in exprs):
                return
            time.sleep(POLL)
        raise AssertionError(f"not all of {exprs} had results after {timeout}s")

    def wait_quiet(self, timeout: float = 120.0) -> None:
        """No alert pending or firing anywhere, so the next scenario starts from healthy."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.evaluator_alerts() and not self.alertmanager_alerts():
                time.sleep(3)  # let a last resolved notification (group_interval) go out
                return
            time.sleep(POLL)
        left = [a["labels"].get("alertname") for a in self.evaluator_alerts()]
        raise AssertionError(f"alerts still active {timeout}s after recovery: {left}")


@dataclass
class Scenario:
    name: str
    inject: Callable[[], None]
    remove: Callable[[], None]
    expect: set[Key]                                  # fire and reach the webhook
    inhibited: set[Key] = field(default_factory=set)  # fire, but held back by Alertmanager
    allowed_signals: set[tuple[str, str]] = field(default_factory=set)  # (service, signal)
    timeout: float = 90.0


@dataclass
class Outcome:
    """What a scenario measured: seconds from fault to alert, and from removal to resolved."""

    scenario: str
    to_evaluator: dict[Key, float] = field(default_factory=dict)
    to_webhook: dict[Key, float] = field(default_factory=dict)
    to_resolved: dict[Key, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def outcome_to_json(out: Outcome) -> dict:
    """The outcome as plain lists and strings: a test report carries it from a pytest-xdist
    worker to the controller, which prints the session's table."""
    def pairs(times: dict[Key, float]) -> list:
        return [[list(k), t] for k, t in times.items()]

    return {"scenario": out.scenario, "to_evaluator": pairs(out.to_evaluator),
            "to_webhook": pairs(out.to_webhook), "to_resolved": pairs(out.to_resolved),
            "problems": list(out.problems), "notes": list(out.notes)}


def outcome_from_json(data: dict) -> Outcome:
    def times(pairs: list) -> dict[Key, float]:
        return {tuple(k): t for k, t in pairs}

    return Outcome(data["scenario"], times(data["to_evaluator"]), times(data["to_webhook"]),
                   times(data["to_resolved"]), list(data["problems"]), list(data["notes"]))


def _epoch(rfc3339: str) -> float:
    """Seconds since the epoch of an RFC 3339 time with up to nanosecond digits."""
    head, _, frac = rfc3339.rstrip("Z").partition(".")
    offset = ""
    for sign in "+-":
        if sign in frac:
            frac, offset = frac.split(sign, 1)[0], sign + frac.split(sign, 1)[1]
    stamp = datetime.fromisoformat(head + (offset or "+00:00"))
    return stamp.timestamp() + (float("0." + frac) if frac else 0.0)


def _unexpected(scenario: Scenario, keys: set[Key]) -> set[Key]:
    allowed = scenario.expect | scenario.inhibited
    return {k for k in keys if k not in allowed and (k[0], k[1]) not in scenario.allowed_signals}


def _watch_fault(chain: Chain, scenario: Scenario, start: float, out: Outcome) -> None:
    """Polls until every expected alert fired and was notified and every inhibited one is held
    back in Alertmanager, noting anything that fires or is notified and should not."""
    deadline = time.monotonic() + scenario.timeout
    wanted = scenario.expect | scenario.inhibited
    held: set[Key] = set()
    while time.monotonic() < deadline:
        now = time.time() - start
        firing = chain.firing()
        for k in firing.keys() & wanted:
            out.to_evaluator.setdefault(k, firing[k] - start)
        if extra := _unexpected(scenario, set(firing)):
            out.problems.append(f"{now:.0f}s: fired but should not: {fmt(extra)}")
        out.to_webhook = {k: t for k, t in chain.notified(start).items() if k in wanted}
        held |= chain.suppressed() & scenario.inhibited
        if (wanted <= out.to_evaluator.keys() and scenario.expect <= out.to_webhook.keys()
                and held >= scenario.inhibited):
            time.sleep(4)  # a notification of an inhibited alert would come within this
            break
        time.sleep(POLL)
    notified = chain.notified(start)
    if leaked := _unexpected(scenario, set(notified)) | (set(notified) & scenario.inhibited):
        out.problems.append(f"notified but should not be: {fmt(leaked)}")
    if missing := wanted - out.to_evaluator.keys():
        out.problems.append(f"did not fire within {scenario.timeout:.0f}s: {fmt(missing)}")
    if missing := scenario.expect - notified.keys():
        out.problems.append(f"not notified within {scenario.timeout:.0f}s: {fmt(missing)}")
    if missing := scenario.inhibited - held:
        out.problems.append(f"not inhibited in Alertmanager: {fmt(missing)}")


def _watch_recovery(chain: Chain, scenario: Scenario, out: Outcome, timeout: float) -> None:
    """After removal: every alert resolves, and the webhook hears it for the notified ones."""
    start = time.time()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        active = {key_of(a["labels"]) for a in chain.evaluator_alerts()}
        out.to_resolved = {k: t for k, t in chain.notified(start, "resolved").items()
                           if k in scenario.expect}
        if not active and scenario.expect <= out.to_resolved.keys():
            return
        time.sleep(POLL)
    out.problems.append(f"not resolved {timeout:.0f}s after the fault was removed: "
                        f"{fmt(active | (scenario.expect - out.to_resolved.keys()))}")


def run_scenario(chain: Chain, scenario: Scenario, recovery_timeout: float = 90.0) -> Outcome:
    """Healthy → fault → alerts → fault removed → resolved; returns what was measured."""
    chain.wait_quiet()
    out = Outcome(scenario.name)
    start = time.time()
    scenario.inject()
    try:
        _watch_fault(chain, scenario, start, out)
    finally:
        scenario.remove()
    _watch_recovery(chain, scenario, out, recovery_timeout)
    return out


Notification = tuple[float, str, str, frozenset]  # at, receiver, group key, (key, status)s


def notifications(webhook: WebhookReceiver, since: float) -> list[Notification]:
    """Notifications (one webhook POST each) since ``since``: (at, receiver, group key,
    the (alert key, status) pairs it carried)."""
    posts: dict[tuple[float, str, str], set] = {}
    for entry in webhook.since(since):
        posts.setdefault((entry.at, entry.receiver, entry.group), set()).add(
            (entry.key(), entry.status))
    return [(at, receiver, group, frozenset(alerts))
            for (at, receiver, group), alerts in sorted(posts.items())]


def duplicates(webhook: WebhookReceiver, since: float) -> list[Notification]:
    """Notifications repeating the previous one of the same receiver and group (same alerts,
    same statuses, nothing changed in between): what a cluster that failed to deduplicate
    sends (repeat_interval is 1 h). A group notified again because its alert resolved and
    fired anew (a flapping side effect) is a new notification, not a duplicate."""
    last: dict[tuple[str, str], frozenset] = {}
    repeated = []
    for at, receiver, group, alerts in notifications(webhook, since):
        if last.get((receiver, group)) == alerts:
            repeated.append((at, receiver, group, alerts))
        last[(receiver, group)] = alerts
    return repeated


def timeline(webhook: WebhookReceiver, since: float) -> str:
    """Every notification since ``since``, one line each (seconds after it, receiver, alerts
    and statuses): what a failed HA check prints so its cause can be read off the run."""
    return "\n    ".join(
        f"+{at - since:6.1f}s {receiver:6} " + ", ".join(
            f"{'/'.join(key)} {status}" for key, status in sorted(alerts))
        for at, receiver, _, alerts in notifications(webhook, since)) or "no notifications"


def count(webhook: WebhookReceiver, since: float, key: Key, status: str) -> int:
    return sum(1 for _, _, _, alerts in notifications(webhook, since) if (key, status) in alerts)


def observe_healthy(chain: Chain, seconds: float) -> Outcome:
    """Healthy traffic for ``seconds``: nothing may be pending, firing or notified."""
    out = Outcome("healthy baseline")
    start = time.time()
    while time.time() - start < seconds:
        if alerts := chain.evaluator_alerts():
            out.problems.append(f"{time.time() - start:.0f}s: "
                                f"{fmt({key_of(a['labels']) for a in alerts})} "
                                f"({', '.join(sorted({a['state'] for a in alerts}))})")
        time.sleep(POLL)
    if notified := chain.notified(start):
        out.problems.append(f"notified on healthy traffic: {fmt(set(notified))}")
    return out


def check(run: str, outcome: Outcome) -> None:
    """Records the outcome for the session's table, then fails on any problem."""
    CHECKED.append((run, outcome))
    assert not outcome.problems, f"{outcome.scenario}:\n  " + "\n  ".join(outcome.problems)


def set_faults(app_url: str, **faults: float) -> None:
    status, body = servers.post(app_url + "/admin/faults", json.dumps(faults).encode())
    assert status == 200, body


def clear_faults(app_url: str) -> None:
    status, body = servers.post(app_url + "/admin/faults", b"", method="DELETE")
    assert status == 200, body


def fault(app_url: str, name: str, expect: set[Key], inhibited: set[Key] = frozenset(),
          allowed: set[tuple[str, str]] = frozenset(), timeout: float = 90.0,
          **faults: float) -> Scenario:
    """A scenario driven by the demo service's fault switches (``/admin/faults``)."""
    return Scenario(name, lambda: set_faults(app_url, **faults),
                    lambda: clear_faults(app_url), set(expect), set(inhibited), set(allowed),
                    timeout)


def table(outcomes: list[Outcome]) -> str:
    """Markdown table of detection and recovery times."""
    lines = ["| scenario | alert (service/signal/severity) | fault → firing in evaluator "
             "| fault → webhook | removal → resolved at webhook |",
             "|---|---|---|---|---|"]
    for out in outcomes:
        keys = sorted(out.to_evaluator) or [("—", "—", "—")]
        for k in keys:
            cells = [_secs(out.to_evaluator.get(k)), _secs(out.to_webhook.get(k)),
                     _secs(out.to_resolved.get(k))]
            if k not in out.to_webhook and k in out.to_evaluator:
                cells[1] = "inhibited"
            lines.append(f"| {out.scenario} | {'/'.join(k)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _secs(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} s"
