"""The compact fleet overview: what `dashboards/overview.json` becomes above
`DETAILED_OVERVIEW_MAX` services.

The detailed overview draws a row and a stat per budget for every service: ~12 panels and
~11 queries per service, i.e. 12,000 panels, 30 MB of JSON and 11,000 queries per refresh
for 1,000 services, which no browser shows usefully. The fleet view asks Prometheus
instead: the alerts *are* the budgets (each fires past one), so a few queries over
`ALERTS` say which services are past which budget, whatever the number of services. Its
panels are the same for 10 or 10,000 services; only service names whose dashboard uid is
shortened with a hash (38-40 characters) add a few bytes each (see
`naming.dashboard_uid_label`). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from grafanalib import core
from watchkeeper import naming, promql
from watchkeeper.dashboards import grafana
from watchkeeper.model import Service, any_slos, service_names
from watchkeeper.signals import slo

# watchkeeper's alerts: every one carries `service` and `signal` (both reserved labels).
_FIRING = 'alertstate="firing",service!="",signal!=""'
SEVERITY_COLOURS = {"critical": grafana.RED, "warning": grafana.YELLOW}


def _stat(panel_id: int, title: str, description: str, expr: str, colour: str,
          x: int) -> core.Stat:
    """A count that is green at 0 and `colour` from 1 on."""
    return core.Stat(
        id=panel_id, title=title, description=description, dataSource=grafana.DATASOURCE,
        targets=[grafana.target(expr, title, "A")], format="short",
        thresholds=[grafana.Step(grafana.GREEN), grafana.Step(colour, 1)],
        reduceCalc="lastNotNull", colorMode="background", graphMode="area",
        gridPos=core.GridPos(h=4, w=8, x=x, y=0))


def firing(extra: str = "") -> str:
    """The `ALERTS` series of watchkeeper's alerts firing now (`extra`: more matchers)."""
    return f"ALERTS{{{_FIRING}{extra}}}"


def _services_firing(severity: str) -> str:
    matcher = f",severity={promql.quote(severity)}"
    return f"count(count by (service) ({firing(matcher)})) or vector(0)"


# Each row's service name opens that service's dashboard, whose uid the query puts in a
# column the table keeps (for the link) but does not show.
_LINK = {"matcher": {"id": "byName", "options": "service"}, "properties": [{
    "id": "links", "value": [{"title": "Open the dashboard of ${__value.raw}",
                              "url": naming.dashboard_link_template()}]}]}
_HIDDEN = {"matcher": {"id": "byName", "options": naming.UID_LABEL},
           "properties": [{"id": "custom.hidden", "value": True}]}


def _table(panel_id: int, title: str, description: str, expr: str, y: int, *,
           unit: str, columns: tuple[str, ...], value_name: str, steps: list[grafana.Step],
           sort: list[core.TableSortByField], extra: list[dict[str, Any]]) -> core.Table:
    """An instant table of `expr`'s series, one row each, its labels as columns."""
    target = grafana.target(expr, "", "A", format="table", instant=True)
    return core.Table(
        id=panel_id, title=title, description=description, dataSource=grafana.DATASOURCE,
        targets=[target], unit=unit, thresholds=steps, displayMode="color-text",
        filterable=True, sortBy=sort, maxDataPoints=None,
        overrides=[_LINK, _HIDDEN, *extra],
        transformations=[{"id": "organize", "options": {
            "excludeByName": {"Time": True, "__name__": True},
            "indexByName": {name: index for index, name in enumerate(columns)},
            "renameByName": {"Value": value_name}}}],
        gridPos=core.GridPos(h=12, w=24, x=0, y=y))


def _severity_colours() -> dict[str, Any]:
    return {"matcher": {"id": "byName", "options": "severity"}, "properties": [
        {"id": "mappings", "value": [{"type": "value", "options": {
            severity: {"color": colour, "index": index}
            for index, (severity, colour) in enumerate(SEVERITY_COLOURS.items())}}]},
        {"id": "custom.cellOptions", "value": {"type": "color-background"}}]}


def _alerts_table(services: Sequence[Service], y: int) -> core.Table:
    expr = naming.dashboard_uid_label(
        f"count by (service, signal, severity) ({firing()})", service_names(services))
    return _table(
        4, "Firing alerts by service", "Every service past a budget now: one line per "
        "service, signal and severity with the number of alerts firing (an alert fires "
        "when its budget is exceeded for its `for`). Click a service to open its dashboard. "
        "Services with no line are within every budget.", expr, y,
        unit="short", columns=("service", "signal", "severity"), value_name="alerts",
        steps=[grafana.Step(grafana.RED)],
        sort=[core.TableSortByField("severity")], extra=[_severity_colours()])


def _history(y: int) -> core.TimeSeries:
    expr = f"count by (severity) ({firing()})"
    return core.TimeSeries(
        id=5, title="Firing alerts over time", description="How many of watchkeeper's "
        "alerts fired, by severity, over the dashboard's time range.",
        dataSource=grafana.DATASOURCE, unit="short", valueMin=0, maxDataPoints=None,
        targets=[grafana.target(expr, "{{severity}}", "A")],
        thresholds=[grafana.Step(grafana.GREEN)],
        gridPos=core.GridPos(h=8, w=24, x=0, y=y))


def _slo_table(services: Sequence[Service], y: int) -> core.Table:
    remaining = slo.REMAINING_BUDGET
    labelled = naming.dashboard_uid_label(slo.REMAINING_RECORD, service_names(services))
    expr = f"sort({labelled})"
    return _table(
        6, "SLOs: error budget remaining, lowest first", "Share of each SLO's error budget "
        "left over its window; 0 is exhausted. Yellow: 25% left, red: exhausted. Click a "
        "service to open its dashboard.", expr, y, unit="percentunit",
        columns=("service", "slo"), value_name="budget remaining",
        steps=grafana.steps(remaining.warning, remaining.critical, remaining.lower_is_worse),
        sort=[core.TableSortByField("budget remaining")], extra=[])


def has_slos(services: Sequence[Service]) -> bool:
    return any_slos(services)


def panels(services: Sequence[Service]) -> list[Any]:
    """Three counts, the table of firing alerts, their history and, when any service
    declares SLOs, the table of error budgets: the same panels for any number of services."""
    out: list[Any] = [
        _stat(1, "Services past a critical budget", "Services with at least one critical "
              "alert firing now.", _services_firing("critical"), grafana.RED, 0),
        _stat(2, "Services past a warning budget", "Services with at least one warning "
              "alert firing now.", _services_firing("warning"), grafana.YELLOW, 8),
        _stat(3, "Firing alerts", "watchkeeper alerts firing now, all services.",
              f"count({firing()}) or vector(0)", grafana.RED, 16),
        _alerts_table(services, 4), _history(16)]
    if has_slos(services):
        out.append(_slo_table(services, 24))
    return out
