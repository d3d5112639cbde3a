"""The one place where grafanalib is extended for current Grafana (10/11).

grafanalib 0.7 writes schemaVersion 12, legacy threshold steps (``"value": "null"`` plus
graph-panel keys) and leaves query datasources empty. Rather than patching JSON after the
fact in many places, this module supplies the missing pieces and renders a grafanalib
object to plain, stable data.
"""

from __future__ import annotations

from typing import Any

import attr
import orjson
from grafanalib import core

SCHEMA_VERSION = 39  # Grafana 10.4/11.x; older servers migrate down-level JSON themselves
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
GREEN, YELLOW, RED = "green", "yellow", "red"


@attr.s(frozen=True)
class Step:
    """A threshold step as current Grafana stores it: the base step has value null."""

    color: str = attr.ib()
    value: float | None = attr.ib(default=None)

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


def target(expr: str, legend: str, ref: str, format: str = "time_series") -> core.Target:
    return core.Target(expr=expr, legendFormat=legend, refId=ref, datasource=DATASOURCE,
                       intervalFactor=1, step=None, format=format)


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
    return node.to_json_data()  # what grafanalib's DashboardEncoder does, in C via orjson


JSON_OPTIONS = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS  # stable text: sorted, 2-space indent


def to_text(node: Any) -> str:
    """Stable JSON text of plain data holding grafanalib objects, in one C pass (no
    intermediate plain copy)."""
    return orjson.dumps(node, default=_to_json_data, option=JSON_OPTIONS).decode()


def dashboard_data(dashboard: core.Dashboard) -> dict[str, Any]:
    """The top level of a dashboard's JSON (values may still be grafanalib objects)."""
    data = dashboard.to_json_data()
    data.pop("id", None)  # assigned by Grafana; the deploy sends the server's own
    return data


def render(dashboard: core.Dashboard) -> dict[str, Any]:
    """Plain JSON-ready data of a grafanalib dashboard (build it with SCHEMA_VERSION)."""
    data = orjson.loads(orjson.dumps(dashboard.to_json_data(), default=_to_json_data))
    data.pop("id", None)  # assigned by Grafana; the deploy sends the server's own
    return data
