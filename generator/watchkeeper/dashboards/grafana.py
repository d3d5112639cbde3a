"""The one place where grafanalib is extended for current Grafana (10/11).

grafanalib 0.7 writes schemaVersion 12, legacy threshold steps (``"value": "null"`` plus
graph-panel keys) and leaves query datasources empty. Rather than patching JSON after the
fact in many places, this module supplies the missing pieces and renders a grafanalib
object to plain, stable data.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any

import attr
import orjson
from grafanalib import core

SCHEMA_VERSION = 39  # Grafana 10.4/11.x; older servers migrate down-level JSON themselves
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
GREEN, YELLOW, RED = "green", "yellow", "red"


@dataclass(frozen=True, slots=True)
class Step:
    """A threshold step as current Grafana stores it: the base step has value null (Grafana's
    schema: `value: number | null`, null meaning -Infinity), so this null is kept. A
    dataclass, which orjson writes itself (no call back into Python per step)."""

    color: str
    value: float | None = None

    def to_json_data(self) -> dict[str, Any]:
        return {"color": self.color, "value": self.value}


def steps(warning: float | None, critical: float | None, lower_is_worse: bool) -> list[Step]:
    """Green/yellow/red steps for a budget; inverted when lower values are worse."""
    if lower_is_worse:
        result = [Step(RED)]
        if critical is not None:
            result.append(Step(YELLOW if warning is not None else GREEN, critical))
        if warning is not None:
            result.append(Step(GREEN, warning))
        return result
    result = [Step(GREEN)]
    if warning is not None:
        result.append(Step(YELLOW, warning))
    if critical is not None:
        result.append(Step(RED, critical))
    return result


@attr.s
class Target(core.Target):
    """grafanalib's Target as Grafana's Prometheus data source stores a query (its schema:
    expr, instant, range, format, legendFormat, intervalFactor, refId, hide, datasource,
    interval): without the keys grafanalib writes for other data sources, `query` (a copy
    of `expr`), Graphite's `target` and `metric`, nor an empty `interval`. A third of a
    query's bytes, on ~30 queries per service dashboard."""

    def to_json_data(self) -> dict[str, Any]:
        data = super().to_json_data()
        for key in _NOT_PROMETHEUS:
            del data[key]
        if not data["interval"]:
            del data["interval"]
        return data


_NOT_PROMETHEUS = ("query", "target", "metric")


def target(expr: str, legend: str, ref: str, format: str = "time_series",
           instant: bool = False) -> Target:
    return Target(expr=expr, legendFormat=legend, refId=ref, datasource=DATASOURCE,
                  intervalFactor=1, step=None, format=format, instant=instant)


def target_data(expr: str, legend: str, ref: str) -> dict[str, Any]:
    """`target(expr, legend, ref)` as the plain data `to_text` writes for it, from a query
    grafanalib rendered once (`skeleton`): no attrs object per query."""
    return {**skeleton("target"), "expr": expr, "legendFormat": legend, "refId": ref}


@cache
def skeleton(kind: str) -> dict[str, Any]:
    """What grafanalib writes for a panel of `kind` (or a query) before any chart sets its
    own values: the keys no chart changes, for building panels as plain data on the hot
    path (see `build._timeseries_data`). Rendered by grafanalib through `to_text`, so it
    has the same keys and values as a panel grafanalib builds. Cached per process (a
    constant; callers copy before they change it)."""
    node = (core.TimeSeries(dataSource=DATASOURCE, maxDataPoints=None) if kind == "timeseries"
            else target("", "", "A"))
    return orjson.loads(to_text(node))


def alert_annotations(selector: str) -> core.Annotations:
    """Firing alerts drawn on every time series: when, which alert, which severity."""
    return core.Annotations(list=[{
        "name": "Firing alerts", "datasource": DATASOURCE, "enable": True,
        "iconColor": "red", "expr": f"ALERTS{selector}", "step": "1m",
        "titleFormat": "{{alertname}}", "textFormat": "{{severity}} {{signal}} {{instance}}",
        "tagKeys": "severity,signal", "useValueForTime": False,
    }])


def datasource_variable() -> core.Template:
    return core.Template(name="datasource", label="Data source", type="datasource",
                         query="prometheus")


def instance_variable(up_selector: str) -> core.Template:
    return core.Template(name="instance", label="Instance", type="query",
                         query=f"label_values({up_selector}, instance)",
                         dataSource=DATASOURCE, includeAll=True, multi=True,
                         allValue=".*", default="$__all", refresh=2)


def _to_json_data(node: Any) -> Any:
    """What grafanalib's DashboardEncoder does (in C via orjson), without its null-valued
    keys: grafanalib writes every optional setting it knows (`"cacheTimeout": null`,
    `"maxDataPoints": null`, ...), 15% of a dashboard's bytes, and Grafana's dashboard
    schema declares them all optional (absent = unset). Threshold steps keep their null
    (see `Step`): orjson writes them without coming here."""
    data = node.to_json_data()
    if type(data) is not dict:
        return data
    data = {key: value for key, value in data.items() if value is not None}
    defaults = data.get("fieldConfig", {}).get("defaults")
    if defaults:  # a panel's plain nested dicts: the unset min, max, decimals, soft limits
        data["fieldConfig"] = {**data["fieldConfig"], "defaults": _unset(defaults)}
    return data


def _unset(defaults: dict[str, Any]) -> dict[str, Any]:
    out = {key: value for key, value in defaults.items() if value is not None}
    if type(custom := out.get("custom")) is dict:
        out["custom"] = {key: value for key, value in custom.items() if value is not None}
    return out


JSON_OPTIONS = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS  # stable text: sorted, 2-space indent


def to_text(node: Any) -> str:
    """Stable JSON text of plain data holding grafanalib objects, in one C pass (no
    intermediate plain copy)."""
    return _dumps(node, JSON_OPTIONS).decode()


def _dumps(node: Any, options: int | None = None) -> bytes:
    """orjson's dumps with grafanalib objects converted on the way. orjson turns whatever
    its `default` raises into a TypeError ("Type is not JSON serializable"), the raised
    exception as its `__cause__`: also Ctrl-C's KeyboardInterrupt and SIGTERM's
    cli.Terminated, which land wherever Python code runs. Those are raised again as
    themselves, so an interrupted run ends as interrupted, not with a traceback."""
    try:
        return orjson.dumps(node, default=_to_json_data, option=options)
    except orjson.JSONEncodeError as error:
        cause = error.__cause__
        if isinstance(cause, BaseException) and not isinstance(cause, Exception):
            raise cause from None
        raise


def dashboard_data(dashboard: core.Dashboard) -> dict[str, Any]:
    """The top level of a dashboard's JSON (values may still be grafanalib objects)."""
    data = _to_json_data(dashboard)
    data.pop("id", None)  # assigned by Grafana; the deploy sends the server's own
    return data


def render(dashboard: core.Dashboard) -> dict[str, Any]:
    """Plain JSON-ready data of a grafanalib dashboard (build it with SCHEMA_VERSION)."""
    return orjson.loads(_dumps(dashboard_data(dashboard)))
