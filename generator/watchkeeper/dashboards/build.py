"""Render the signals' charts into Grafana dashboards with grafanalib: one per service plus
an overview.

Pure: a resolved spec in, `{relative_path: text}` out (``dashboards/<service>.json``,
``dashboards/overview.json`` and a file-provisioning provider for teams that do not use
the API). Layout is computed, never stored, so output is byte-stable.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import orjson
from grafanalib import core
from watchkeeper import naming, promql
from watchkeeper.dashboards import fleet, grafana
from watchkeeper.model import Chart, Row, Service, Spec
from watchkeeper.signals import charts
from watchkeeper.writers import to_yaml

if TYPE_CHECKING:
    from watchkeeper.parts import Parts

WIDTH, HEIGHT = 12, 8  # two charts per line on Grafana's 24-column grid
STAT_WIDTH, STAT_HEIGHT = 4, 4
TAGS = (naming.MANAGED_TAG, "watchkeeper")
FOLDER = "watchkeeper"
# Up to this many services the overview has a row of coloured stats per service (~12
# panels and ~11 queries each); above it, the compact fleet view of `fleet.py`, whose
# panels and queries do not grow with the spec. 20 services = ~240 panels and queries
# per refresh, about what one screen of stats can show and a Prometheus answers at once.
DETAILED_OVERVIEW_MAX = 20


def _panel(chart: Chart, x: int, y: int, width: int) -> Any:
    if chart.kind == "heatmap":
        return _heatmap(chart, x, y, width)
    return _timeseries_data(chart, x, y, width)


def _timeseries(chart: Chart, x: int, y: int, width: int = WIDTH) -> core.TimeSeries:
    """A time series drawing its budget as lines; the axis reaches a little past the
    highest budget (not a fixed 0-100%), so a 0.1% line is not flattened to the floor.

    The builder of record: `_timeseries_data` is the same panel as plain data, and
    tests/dashboards/test_fast_panels.py holds the two equal for every chart of several
    specs."""
    budget, top = chart.budget, _axis_top(chart)
    return core.TimeSeries(
        id=naming.panel_id(chart), title=chart.title, description=chart.description,
        dataSource=grafana.DATASOURCE, unit=chart.unit,
        targets=[grafana.target(q.expr, q.legend, chr(ord("A") + i))
                 for i, q in enumerate(chart.queries)],
        thresholds=_steps(chart), thresholdsStyleMode="line+area" if budget else "off",
        gridPos=core.GridPos(h=HEIGHT, w=width, x=x, y=y),
        valueMin=0 if chart.unit in _FROM_ZERO else None,
        maxDataPoints=None,  # grafanalib validates axisSoftMax as int: set it directly
        extraJson={"fieldConfig": {"defaults": {"custom": {"axisSoftMax": top}}}}
        if top is not None else None,
    )


_FROM_ZERO = ("percentunit", "bytes", "s", "short")  # units whose axis starts at 0


def _steps(chart: Chart) -> list[grafana.Step]:
    budget = chart.budget
    return (grafana.steps(budget.warning, budget.critical, budget.lower_is_worse)
            if budget else [grafana.Step(grafana.GREEN)])


def _axis_top(chart: Chart) -> float | None:
    budget = chart.budget
    top = max(v for _, v in budget.severities()) * 1.2 if budget else None
    if top is not None and chart.unit == "percentunit":
        top = min(top, 1.0)
    return top


def _timeseries_data(chart: Chart, x: int, y: int, width: int = WIDTH) -> dict[str, Any]:
    """`_timeseries` as the plain data `grafana.to_text` would write for it, without
    building grafanalib objects: the ~14 time series of each of 1,000 service dashboards
    were most of the dashboards' build CPU (attrs validators on ~60 fields per panel, then
    grafanalib's `to_json_data` walk and `_deep_update`). grafanalib stays the builder of
    record: every key that does not depend on the chart comes from a panel grafanalib
    rendered once (`grafana.skeleton`); only the chart's own values are set here. The
    result's nested dicts are shared between panels: read them, never change them."""
    skeleton = grafana.skeleton("timeseries")
    defaults = skeleton["fieldConfig"]["defaults"]
    custom = {**defaults["custom"],
              "thresholdsStyle": {"mode": "line+area" if chart.budget else "off"}}
    if (top := _axis_top(chart)) is not None:
        custom["axisSoftMax"] = top
    own = {**defaults, "custom": custom, "unit": chart.unit,
           "thresholds": {**defaults["thresholds"], "steps": _steps(chart)}}
    if chart.unit in _FROM_ZERO:
        own["min"] = 0
    data = {**skeleton, "id": naming.panel_id(chart), "title": chart.title,
            "fieldConfig": {**skeleton["fieldConfig"], "defaults": own},
            "gridPos": {"h": HEIGHT, "w": width, "x": x, "y": y},
            "targets": [grafana.target_data(q.expr, q.legend, chr(ord("A") + i))
                        for i, q in enumerate(chart.queries)]}
    if chart.description is not None:
        data["description"] = chart.description
    return data


def _heatmap(chart: Chart, x: int, y: int, width: int = WIDTH) -> core.Heatmap:
    """A heatmap of histogram bucket rates (Grafana 10+ heatmap options, buckets as-is)."""
    return core.Heatmap(
        id=naming.panel_id(chart), title=chart.title, description=chart.description,
        dataSource=grafana.DATASOURCE, dataFormat="tsbuckets", hideZeroBuckets=True,
        targets=[grafana.target(q.expr, q.legend, chr(ord("A") + i), format="heatmap")
                 for i, q in enumerate(chart.queries)],
        gridPos=core.GridPos(h=HEIGHT, w=width, x=x, y=y), maxDataPoints=None,
        yBucketBound="upper",
        extraJson={"fieldConfig": {"defaults": {"unit": chart.unit}},
                   "options": {"calculate": False, "yAxis": {"unit": chart.unit},
                               "cellValues": {"unit": "reqps"},
                               "color": {"mode": "scheme", "scheme": "Oranges"},
                               "filterValues": {"le": 1e-09}}},
    )


def _row(row: Row, y: int) -> core.RowPanel:
    return core.RowPanel(id=row.base, title=row.title, gridPos=core.GridPos(h=1, w=24, x=0, y=y))


def layout(service: Service, parts: Parts | None = None
           ) -> list[tuple[Row | None, list[Chart]]]:
    """The service's charts by row: charts above every row first, then rows by base id,
    each in panel-id order. Two charts claiming one panel id is a bug in a signal. With
    `parts`, signals' charts for the same inputs as an earlier service's are taken from
    it (`parts.Parts`)."""
    by_row: dict[Row | None, list[Chart]] = {}
    seen: dict[int, Chart] = {}
    for chart in charts(service, None if parts is None else parts.service(service)):
        panel = naming.panel_id(chart)
        if panel in seen:
            raise ValueError(f"panel id {panel} claimed by {seen[panel].title!r} and "
                             f"{chart.title!r}")
        seen[panel] = chart
        by_row.setdefault(chart.row, []).append(chart)
    order = sorted(by_row, key=lambda row: row.base if row else 0)
    return [(row, sorted(by_row[row], key=naming.panel_id)) for row in order]


def _places(charts: Sequence[Chart], y: int) -> list[tuple[Chart, tuple[int, int, int]]]:
    """Each chart's place (x, y, width) from `y` down: two panels per line; an odd last
    panel takes the whole line instead of leaving a hole."""
    return [(chart, ((i % 2) * WIDTH, y + (i // 2) * HEIGHT,
                     2 * WIDTH if i == len(charts) - 1 and i % 2 == 0 else WIDTH))
            for i, chart in enumerate(charts)]


def _below(charts: Sequence[Chart], y: int) -> int:
    """Where the next row starts below `charts` placed from `y` (see `_places`)."""
    return y + ((len(charts) + 1) // 2) * HEIGHT


def _grid(charts: Sequence[Chart], y: int) -> tuple[list[Any], int]:
    """The charts' panels at their places (see `_places`), and where the next row starts."""
    return [_panel(chart, *place) for chart, place in _places(charts, y)], _below(charts, y)


def service_dashboard(service: Service) -> dict[str, Any]:
    """The dashboard of one service: availability, then one row per declared section."""
    return grafana.render(_service_dashboard(service))


def _service_dashboard(service: Service, parts: Parts | None = None) -> core.Dashboard:
    panels: list[Any] = []
    y = 0
    for row, row_charts in layout(service, parts):
        if row is not None:
            panels.append(_row(row, y))
            y += 1
        grid, y = _grid(row_charts, y)
        panels.extend(grid)
    return _frame(service, panels)


def _up(service: Service) -> str:
    return service.metric("up") + promql.matchers(service.selector)


def _frame(service: Service, panels: list[Any]) -> core.Dashboard:
    """The service's dashboard around `panels`: all but the panels depends on the service's
    name and `_up` alone."""
    return core.Dashboard(
        title=f"{service.name} performance budgets", uid=naming.dashboard_uid(service.name),
        description=f"Generated by watchkeeper from the budgets of {service.name}.",
        tags=[*TAGS, f"service:{service.name}"], panels=panels, timezone="browser",
        schemaVersion=grafana.SCHEMA_VERSION, refresh="1m", sharedCrosshair=True,
        templating=core.Templating([grafana.datasource_variable(),
                                    grafana.instance_variable(_up(service))]),
        annotations=grafana.alert_annotations(promql.matchers(
            {"service": service.name, "alertstate": "firing"})),
        links=[core.DashboardLink(title="Overview", uri=f"/d/{naming.OVERVIEW_UID}",
                                  type="link", includeVars=True, keepTime=True)],
    )


# Panel texts a run holds (per worker process: `Parts.same`, kind "panel"): a chart of the
# held signal parts at each place it is drawn (the benchmark spec: ~100-200, ~3 KB each),
# and the look-ups made before the table may give up: ~16 a service, all new for the first
# services, so the default (64) would give up within four services.
PANELS_HELD, PANELS_PROBE = 512, 1024


def _service_dashboard_text(service: Service, parts: Parts) -> str:
    """`grafana.to_text` of the service's dashboard (`dashboard_data`), from texts made
    once per run (`parts.Parts.same`): each chart's panel at its place, each row panel,
    and the dashboard around its panels (by name and `_up`), joined as a whole dump
    writes them (as `_detailed_overview` does). Held charts are the same objects for
    every service with their signal's inputs, so a panel is built and serialised once
    per place instead of once per service: the ~16 panels are most of a dashboard's
    ~51 KB and of its CPU."""
    texts = []
    y = 0
    for row, row_charts in layout(service, parts):
        if row is not None:
            texts.append(parts.same("row", (row,), y, functools.partial(_row_text, row, y)))
            y += 1
        texts.extend(parts.same("panel", (chart,), place,
                                functools.partial(_chart_text, chart, place),
                                PANELS_HELD, PANELS_PROBE)
                     for chart, place in _places(row_charts, y))
        y = _below(row_charts, y)
    head, tail = parts.same("frame", (), (service.name, _up(service)),
                            functools.partial(_frame_texts, service))
    return head + ("[\n" + ",\n".join(texts) + "\n  ]" if texts else "[]") + tail


def _panel_text(panel: Any) -> str:
    """A panel's JSON as it stands in a dashboard's `panels` list (indented two levels
    deep), without the list's brackets and commas."""
    return grafana.to_text({"panels": [panel]})[len(_WRAP_HEAD):-len(_WRAP_TAIL)]


def _row_text(row: Row, y: int) -> str:
    return _panel_text(_row(row, y))


def _chart_text(chart: Chart, place: tuple[int, int, int]) -> str:
    return _panel_text(_panel(chart, *place))


def _frame_texts(service: Service) -> tuple[str, str]:
    """The service dashboard's text before and after its panels' list (with the file's
    final line break)."""
    data = grafana.dashboard_data(_frame(service, []))
    data["panels"] = _PANELS
    head, tail = grafana.to_text(data).split(f'"{_PANELS}"')
    return head, tail + "\n"


def _stat(chart: Chart, link: str, x: int, y: int) -> core.Stat:
    budget = chart.budget
    assert budget is not None and chart.stat is not None
    return core.Stat(
        title=chart.title, description=chart.description, dataSource=grafana.DATASOURCE,
        targets=[grafana.target(chart.stat, chart.title, "A")], format=chart.unit,
        thresholds=grafana.steps(budget.warning, budget.critical, budget.lower_is_worse),
        reduceCalc="lastNotNull", colorMode="background", graphMode="none",
        gridPos=core.GridPos(h=STAT_HEIGHT, w=STAT_WIDTH, x=x, y=y),
        links=[{"title": "Open panel",
                "url": f"{link}?viewPanel={naming.panel_id(chart)}&${{__url_time_range}}"}],
    )


def _firing(service: Service, link: str, x: int, y: int) -> core.Stat:
    expr = f'count(ALERTS{{alertstate="firing",service={promql.quote(service.name)}}}) or vector(0)'
    return core.Stat(
        title="Firing alerts", description=f"Alerts of {service.name} firing now.",
        dataSource=grafana.DATASOURCE, targets=[grafana.target(expr, "firing", "A")],
        format="short", thresholds=[grafana.Step(grafana.GREEN), grafana.Step(grafana.RED, 1)],
        reduceCalc="lastNotNull", colorMode="background", graphMode="none",
        gridPos=core.GridPos(h=STAT_HEIGHT, w=STAT_WIDTH, x=x, y=y),
        links=[{"title": f"{service.name} dashboard", "url": link}],
    )


_PANELS = "@@watchkeeper-panels@@"  # where the streamed panels go in the overview's text
_WRAP_HEAD, _WRAP_TAIL = '{\n  "panels": [\n', "\n  ]\n}"


def overview_text(services: Sequence[Service]) -> Iterator[str]:
    """`dashboards/overview.json`, in pieces: detailed up to `DETAILED_OVERVIEW_MAX`
    services (see `_detailed_overview`), the compact fleet view above (`fleet.py`)."""
    if len(services) > DETAILED_OVERVIEW_MAX:
        yield _fleet_overview(services)
    else:
        yield from _detailed_overview(services)


def _overview(description: str, panels: list[Any]) -> core.Dashboard:
    return core.Dashboard(
        title="watchkeeper overview", uid=naming.OVERVIEW_UID, description=description,
        tags=[*TAGS, "overview"], panels=panels, timezone="browser",
        schemaVersion=grafana.SCHEMA_VERSION, refresh="1m",
        templating=core.Templating([grafana.datasource_variable()]),
        links=[core.DashboardLink(title="Services", type="dashboards", tags=[naming.MANAGED_TAG],
                                  asDropdown=True, includeVars=True, keepTime=True)],
    )


def _fleet_overview(services: Sequence[Service]) -> str:
    """The compact overview: the same few panels for any number of services."""
    dashboard = _overview("Which services are past a budget now, from their firing alerts "
                          "(one dashboard per service: the Services menu). Generated by "
                          "watchkeeper.", fleet.panels(services))
    return grafana.to_text(grafana.dashboard_data(dashboard)) + "\n"


def _detailed_overview(services: Sequence[Service]) -> Iterator[str]:
    """One row per service (firing alerts and each budget's current state as a coloured
    stat), then the SLO row.

    Each service's panels are rendered and handed on before the next one's are built.
    The text is the one a whole-document dump would give (sorted keys, 2-space indent),
    piece by piece."""
    dashboard = _overview("Every service against its budgets. Generated by watchkeeper.", [])
    data = grafana.dashboard_data(dashboard)
    data["panels"] = _PANELS
    head, tail = grafana.to_text(data).split(f'"{_PANELS}"')
    yield head + "["
    separator = "\n"
    for panels in _overview_panels(services):
        if panels:
            # nested at the depth of the dashboard's panels, so indented as a whole dump is
            yield separator + grafana.to_text({"panels": panels})[len(_WRAP_HEAD):-len(_WRAP_TAIL)]
            separator = ",\n"
    yield ("\n  ]" if separator != "\n" else "]") + tail + "\n"


def _overview_panels(services: Sequence[Service]) -> Iterator[list[Any]]:
    """The overview's panels, one service's row at a time, then the SLO row."""
    y, next_id = 0, 1
    per_line = 24 // STAT_WIDTH
    slos: list[tuple[Service, Chart]] = []  # for the SLO row, gathered on the way (small)
    for service in services:
        link = naming.dashboard_path(service)
        panels: list[Any] = [core.RowPanel(id=next_id, title=service.name,
                                           gridPos=core.GridPos(h=1, w=24, x=0, y=y),
                                           links=[{"title": "Dashboard", "url": link}])]
        y += 1
        stats: list[Any] = [_firing(service, link, 0, 0)]
        stated = [c for _, row in layout(service) for c in row if c.stat is not None]
        slos.extend((service, c) for c in stated if _slo(c))
        stats.extend(_stat(c, link, 0, 0) for c in stated if c.budget is not None
                     and not _slo(c))
        for index, stat in enumerate(stats):
            stat.id = next_id + 1 + index
            stat.gridPos = core.GridPos(h=STAT_HEIGHT, w=STAT_WIDTH,
                                        x=(index % per_line) * STAT_WIDTH,
                                        y=y + (index // per_line) * STAT_HEIGHT)
        panels.extend(stats)
        yield panels
        next_id += 1 + len(stats)
        y += ((len(stats) + per_line - 1) // per_line) * STAT_HEIGHT
    yield _slo_row(slos, next_id, y, per_line)


def _slo(chart: Chart) -> bool:
    return chart.row is not None and chart.row.key == "slos"


def _slo_row(found: Sequence[tuple[Service, Chart]], next_id: int, y: int,
             per_line: int) -> list[Any]:
    """The SLO row: every SLO's stat (its remaining error budget), linked to its service."""
    if not found:
        return []
    panels: list[Any] = [core.RowPanel(id=next_id, title="SLOs: error budget remaining",
                                       gridPos=core.GridPos(h=1, w=24, x=0, y=y))]
    for index, (service, chart) in enumerate(found):
        stat = _stat(chart, naming.dashboard_path(service), 0, 0)
        stat.title = f"{service.name} {chart.title.split(':')[0]}"
        stat.id = next_id + 1 + index
        stat.gridPos = core.GridPos(h=STAT_HEIGHT, w=STAT_WIDTH,
                                    x=(index % per_line) * STAT_WIDTH,
                                    y=y + 1 + (index // per_line) * STAT_HEIGHT)
        panels.append(stat)
    return panels


def provisioning() -> dict[str, Any]:
    """A Grafana file provider for teams that provision dashboards from disk instead."""
    return {"apiVersion": 1, "providers": [{
        "name": "watchkeeper", "orgId": 1, "folder": FOLDER, "folderUid": FOLDER,
        "type": "file", "disableDeletion": False, "allowUiUpdates": False,
        "updateIntervalSeconds": 60,
        "options": {"path": "/var/lib/grafana/dashboards/watchkeeper",
                    "foldersFromFilesStructure": False},
    }]}


def to_json(document: Any) -> str:
    """Stable JSON (sorted keys, 2-space indent), in C: the stdlib encoder with indent is
    pure Python and took most of the 1,000-service benchmark."""
    return orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n"


def service_dashboard_files(service: Service, spec_name: str, parts: Parts | None = None
                            ) -> dict[str, str]:
    """The files of `dashboards/` that depend on one service alone (with `parts`, from
    texts made once per run while the panels' table looks them up: see
    `_service_dashboard_text`)."""
    if parts is not None and parts.looks_up("panel"):
        text = _service_dashboard_text(service, parts)
    else:
        text = grafana.to_text(grafana.dashboard_data(_service_dashboard(service, parts))) + "\n"
    return {f"dashboards/{service.name}.json": text}


def shared_dashboard_files(spec: Spec, spec_name: str) -> dict[str, str | Iterable[str]]:
    """The files of `dashboards/` drawn from every service: the overview (as pieces, see
    `overview_text`) and the provider."""
    header = (f"# Generated by watchkeeper from {spec_name}; do not edit. Copy the JSON files "
              "of dashboards/ to options.path.\n")
    return {"dashboards/overview.json": overview_text(spec.services),
            "dashboards/provisioning/dashboards.yaml": to_yaml(provisioning(), header)}


def dashboard_files(spec: Spec, spec_name: str) -> dict[str, str]:
    """Every file of the `dashboards/` output folder."""
    files: dict[str, str] = {}
    for service in spec.services:
        files.update(service_dashboard_files(service, spec_name))
    shared = {path: text if isinstance(text, str) else "".join(text)
              for path, text in shared_dashboard_files(spec, spec_name).items()}
    return {**files, **shared}
