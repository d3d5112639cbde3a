"""Names shared by outputs: dashboard uids, panel ids, the links alerts carry, and the
names of the rule and promtool test files.

Signals build alerts without any link; :func:`annotate` then adds `runbook_url` and
`dashboard_url` to every alert (and to the alerts the promtool scenarios expect) in one
pass, pointing each alert at the panel whose chart says it explains that alert. A link can
therefore only point at a panel that is generated, and no signal imports the dashboards.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from watchkeeper.model import Alert, AlertCheck, Chart, ExpectedAlert, Piece, Row, Scenario, Service

UID_MAX = 40
UID_PATTERN = re.compile(r"^[a-z0-9-]{1,40}$")
UID_PREFIX = "wk-"
OVERVIEW_UID = "wk-overview"
MANAGED_TAG = "watchkeeper-managed"
UID_LABEL = "dashboard"  # the label `dashboard_uid_label` adds: a service's dashboard uid

# Rows shared by several signals; a signal with a section of its own declares its Row
# next to its charts (base ids are multiples of 100, slots stay below 100).
HTTP = Row("http", "HTTP", 100)
DATABASE = Row("database", "Database", 200)
CACHES = Row("caches", "Caches", 300)
RUNTIME = Row("runtime", "Runtime", 400)


def dashboard_uid(service_name: str) -> str:
    """`wk-<service>`; names too long for Grafana's 40 characters keep a hash suffix."""
    uid = UID_PREFIX + service_name
    if len(uid) <= UID_MAX:
        return uid
    digest = hashlib.sha1(service_name.encode()).hexdigest()[:8]
    return f"{uid[: UID_MAX - 9].rstrip('-')}-{digest}"


def dashboard_uid_label(expr: str, service_names: Iterable[str]) -> str:
    """`expr` with each series' service dashboard uid in `UID_LABEL`, computed by Prometheus
    from its `service` label: `wk-<service>`, except for the names `dashboard_uid` shortens
    with a hash, each mapped explicitly (so only those add to the query's length)."""
    out = f'label_replace({expr}, "{UID_LABEL}", "{UID_PREFIX}$1", "service", "(.+)")'
    for name in service_names:
        uid = dashboard_uid(name)
        if uid != UID_PREFIX + name:  # names are [a-z0-9-]: nothing to escape in the regex
            out = f'label_replace({out}, "{UID_LABEL}", "{uid}", "service", "{name}")'
    return out


def dashboard_link_template() -> str:
    """A Grafana data link to the dashboard whose uid is in the row's `UID_LABEL` field
    (Grafana redirects `/d/<uid>` to the full path), keeping the time range."""
    return f"/d/${{__data.fields.{UID_LABEL}}}?${{__url_time_range}}"


def panel_id(chart: Chart) -> int:
    """A chart's panel id: its row's base plus its slot (charts above every row: the slot)."""
    return (chart.row.base if chart.row else 0) + chart.slot


def dashboard_path(service: Service) -> str:
    return f"/d/{dashboard_uid(service.name)}/{service.name}"


def dashboard_url(service: Service, panel: int) -> str:
    assert service.grafana_url is not None
    return f"{service.grafana_url.rstrip('/')}{dashboard_path(service)}?viewPanel={panel}"


def runbook_url(service: Service, alert: str, signal: str) -> str | None:
    if not service.runbook_url:
        return None
    return service.runbook_url.format(service=service.name, alert=alert, signal=signal)


def parse_link(url: str) -> tuple[str, int] | None:
    """(uid, panel id) of a `dashboard_url`, or None when it is not one of ours."""
    match = re.search(r"/d/([^/?#]+)(?:/[^?#]*)?\?(?:.*&)?viewPanel=(\d+)", url)
    return (match[1], int(match[2])) if match else None


# --- Rule and test files --------------------------------------------------------------------
# A rule group's file is `alerts/<service>.<section>.rules.yml`; a promtool test file is
# `alerts/tests/<stem>.test.yml`, its stem saying which groups' scenarios it holds. Every
# name starts with the service and its first dot ends it (service names hold no dots):
# `generate --shard` and the backtest read the service back that way. The rest is made
# only of the rule groups, so the same spec always writes the same paths (the committed
# output is diffed in CI) and a changed service rewrites only its own files.


def group_stem(service_name: str, group: str) -> str:
    """`<service>.<section>` for the rule group `<service>-<section>` (its file's name
    without `.rules.yml`, and the stem of its own test file)."""
    return f"{service_name}.{group.removeprefix(service_name + '-')}"


def rules_path(stem: str) -> str:
    return f"alerts/{stem}.rules.yml"


def listed_rules(stem: str) -> str:
    """A rule file as the test files in `alerts/tests/` list it."""
    return f"../{stem}.rules.yml"


def test_path(stem: str) -> str:
    return f"alerts/tests/{stem}.test.yml"


def _section(stem: str) -> str:
    return stem.split(".", 1)[1]


def shared_test_stem(stems: Sequence[str]) -> str:
    """Groups whose tests share one file (cheaper for promtool, see `rule_tests.layout`):
    the first group's stem, then the others' sections, `svc-7.http+database+cache`."""
    return "+".join([stems[0], *(_section(s) for s in stems[1:])])


def with_stem(stem: str, others: Iterable[str]) -> str:
    """A group's scenarios that also check other groups' alerts, in a file apart from
    those reading its own rules only (`rule_tests.own_part`): `svc-7.leak.with-runtime`,
    naming the groups whose rule files it lists too."""
    return f"{stem}.with-" + "+".join(_section(s) for s in others)


def apart_stem(stem: str) -> str:
    """A file of a shared test's scenarios that read a group the file's own groups do not
    include: `.apart` keeps its name from ever being another group's own file."""
    return f"{stem}.apart"


_GENERATED = re.compile(r"^alerts/(?P<tests>tests/)?(?P<service>[a-z][a-z0-9-]*)"
                        r"(?:\.(?P<section>[^/]*))?\.(?:(?(tests)test|rules))\.yml$")


class FileName(NamedTuple):
    """What a generated rule or test file's path says (the inverse of the names above)."""

    service: str
    section: str  # after the service's dot: `http`, `http+database.apart`; "" when none
    test: bool  # alerts/tests/<stem>.test.yml rather than alerts/<stem>.rules.yml


def parse_path(path: str) -> FileName | None:
    """Service and section of `alerts/<stem>.rules.yml` or `alerts/tests/<stem>.test.yml`:
    the service is the stem up to its first dot (service names hold none); None for any
    other path (alertmanager.yml, dashboards)."""
    match = _GENERATED.match(path)
    if not match:
        return None
    return FileName(match["service"], match["section"] or "", bool(match["tests"]))


# --- The annotation overlay ------------------------------------------------------------------


class _Links:
    """Which panel explains an alert: the first chart naming it whose `match` labels the
    alert carries."""

    def __init__(self, charts: Iterable[Chart]):
        self._by_alert: dict[str, list[tuple[dict[str, str], int]]] = {}
        for chart in charts:
            for alert in chart.alerts:
                self._by_alert.setdefault(alert, []).append((dict(chart.match), panel_id(chart)))

    def panel(self, alert: str, labels: dict[str, str]) -> int | None:
        for match, panel in self._by_alert.get(alert, ()):
            if all(labels.get(k) == v for k, v in match.items()):
                return panel
        return None


def _links(service: Service, alert: str, labels: dict[str, str],
           links: _Links | None) -> dict[str, str]:
    extra = {}
    if (runbook := runbook_url(service, alert, labels.get("signal", ""))) is not None:
        extra["runbook_url"] = runbook
    if links is not None and (panel := links.panel(alert, labels)) is not None:
        extra["dashboard_url"] = dashboard_url(service, panel)
    return extra


def _expected(service: Service, check: AlertCheck, links: _Links | None) -> AlertCheck:
    if not check.expected:
        return check
    return dataclasses.replace(check, expected=tuple(
        ExpectedAlert(e.labels, {**e.annotations, **_links(service, check.alert, e.labels,
                                                               links)})
        for e in check.expected))


def _scenario(service: Service, scenario: Scenario, links: _Links | None) -> Scenario:
    if not any(check.expected for check in scenario.alert_checks):
        return scenario
    return dataclasses.replace(scenario, alert_checks=tuple(
        _expected(service, check, links) for check in scenario.alert_checks))


def annotate(service: Service, pieces: Sequence[Piece], charts: Iterable[Chart]) -> None:
    """Add `runbook_url` and `dashboard_url` to every alert of `pieces` and to every alert
    their scenarios expect (in place). `charts` are the service's dashboard charts; they
    are only consulted when the service has a `grafana_url`."""
    links = _Links(charts) if service.grafana_url else None
    if not service.runbook_url and links is None:
        return
    for piece in pieces:
        piece.alerts = [
            Alert(a.name, a.expr, a.for_, a.labels,
                  {**a.annotations, **_links(service, a.name, a.labels, links)},
                  a.keep_firing_for)
            for a in piece.alerts]
        piece.scenarios = [_scenario(service, s, links) for s in piece.scenarios]
