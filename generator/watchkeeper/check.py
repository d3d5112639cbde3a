"""`watchkeeper check`: the cross-checks that make generated dashboards trustworthy.

Every dashboard query must parse (promtool, through a throw-away rule file per query),
every recording rule it reads must be generated in `alerts/`, every alert's
`dashboard_url` must point at a panel that exists, uids must be valid and unique, and no
panel may lack a title or a unit. Each problem names the dashboard, the panel and what
is wrong, so a broken hand edit or a renamed recording is found before anyone deploys.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from watchkeeper import naming as ids
from watchkeeper import promtool

# A recording name is a metric name with a colon (Prometheus' level:metric:operations).
_RECORD = re.compile(r"(?<![\w:.\[])([a-zA-Z_][a-zA-Z0-9_]*:[a-zA-Z0-9_:]*)(?=\s*[{\[),\s]|$)")
_STRINGS = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
_GRAFANA_INTERVAL = re.compile(r"\$\{?__(?:rate_interval|interval|range)\}?")
_GRAFANA_VARIABLE = re.compile(r"\$\{[^}]+\}|\$\w+|\[\[\w+\]\]")


@dataclass(frozen=True)
class Query:
    file: str
    dashboard: str
    panel: str  # "'title' (id N)"
    ref: str
    expr: str


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    dashboards: int = 0
    queries: int = 0
    links: int = 0


def dashboard_files(root: Path) -> list[Path]:
    return sorted((root / "dashboards").glob("*.json"))


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def _label(panel: dict[str, Any]) -> str:
    return f"panel {panel.get('title') or '(untitled)'!r} (id {panel.get('id')})"


def recorded(root: Path) -> set[str]:
    """Names of every recording rule generated into `alerts/`."""
    names: set[str] = set()
    for path in sorted((root / "alerts").glob("*.rules.yml")):
        for group in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("groups", []):
            names.update(rule["record"] for rule in group.get("rules", []) if "record" in rule)
    return names


def referenced(expr: str) -> set[str]:
    """Recording names a PromQL expression reads (quoted strings are ignored)."""
    return set(_RECORD.findall(_STRINGS.sub('""', expr)))


def for_promtool(expr: str) -> str:
    """The query with Grafana's variables replaced by values PromQL accepts."""
    return _GRAFANA_VARIABLE.sub(".*", _GRAFANA_INTERVAL.sub("5m", expr))


def _structure(file: str, dashboard: dict[str, Any], uids: dict[str, str],
               report: Report) -> list[Query]:
    uid = dashboard.get("uid")
    if not isinstance(uid, str) or not ids.UID_PATTERN.match(uid):
        report.problems.append(f"{file}: uid {uid!r} is not 1-40 lowercase letters, "
                               "digits or dashes")
    elif uid in uids:
        report.problems.append(f"{file}: uid {uid!r} is also used by {uids[uid]}")
    else:
        uids[uid] = file
    queries = []
    for panel in panels(dashboard):
        if panel.get("type") == "row":
            continue
        where = f"{file}: {_label(panel)}"
        if not panel.get("title"):
            report.problems.append(f"{where}: has no title")
        if not panel.get("fieldConfig", {}).get("defaults", {}).get("unit"):
            report.problems.append(f"{where}: has no unit")
        for target in panel.get("targets", []):
            if target.get("expr"):
                queries.append(Query(file, str(uid), _label(panel), target.get("refId", "?"),
                                     target["expr"]))
    return queries


def _recordings(queries: list[Query], records: set[str], report: Report) -> None:
    for q in queries:
        for name in sorted(referenced(q.expr) - records):
            report.problems.append(f"{q.file}: {q.panel}: query {q.ref} reads recording rule "
                                   f"{name!r}, which no file in alerts/ generates")


def _parse(queries: list[Query], report: Report) -> None:
    """Run every query through promtool at once, one throw-away rule file per query."""
    if not queries:
        return
    with tempfile.TemporaryDirectory(prefix="watchkeeper-check-") as tmp:
        files = []
        for index, q in enumerate(queries):
            path = Path(tmp) / f"q{index}.yml"
            rule = {"record": "watchkeeper:check", "expr": for_promtool(q.expr)}
            path.write_text(yaml.safe_dump({"groups": [{"name": "check", "rules": [rule]}]}),
                            encoding="utf-8")
            files.append(path)
        result = promtool.check_rules(files)
    ok = {Path(r.file).name for r in result.files if r.ok}
    errors: dict[str, str] = {}
    for line in result.output.splitlines():  # promtool prints errors as "<file>: <error>"
        if match := re.match(r"^\S*?(q\d+\.yml): (.*)$", line.strip()):
            errors.setdefault(match[1], re.sub(r'^.*?"watchkeeper:check": ', "", match[2]))
    for index, q in enumerate(queries):
        name = f"q{index}.yml"
        if name not in ok:
            report.problems.append(f"{q.file}: {q.panel}: query {q.ref} does not parse: "
                                   f"{errors.get(name, 'promtool rejected it')}")


def _links(root: Path, dashboards: dict[str, dict[str, Any]], report: Report) -> None:
    panel_ids = {d.get("uid"): {p.get("id") for p in panels(d)} for d in dashboards.values()}
    for path in sorted((root / "alerts").glob("*.rules.yml")):
        for group in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("groups", []):
            for rule in group.get("rules", []):
                url = rule.get("annotations", {}).get("dashboard_url")
                if "alert" not in rule or url is None:
                    continue
                report.links += 1
                where = f"alerts/{path.name}: alert {rule['alert']}"
                target = ids.parse_link(url)
                if target is None:
                    report.problems.append(f"{where}: dashboard_url {url!r} has no "
                                           "/d/<uid>...?viewPanel=<id>")
                elif target[0] not in panel_ids:
                    report.problems.append(f"{where}: dashboard_url points at dashboard "
                                           f"{target[0]!r}, which is not in dashboards/")
                elif target[1] not in panel_ids[target[0]]:
                    report.problems.append(f"{where}: dashboard_url points at panel "
                                           f"{target[1]} of {target[0]!r}, which has no such panel")


def check(root: Path) -> Report:
    """All cross-checks over `root/dashboards` and `root/alerts`."""
    report = Report()
    dashboards: dict[str, dict[str, Any]] = {}
    for path in dashboard_files(root):
        try:
            dashboards[f"dashboards/{path.name}"] = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            report.problems.append(f"dashboards/{path.name}: not valid JSON: {error}")
    report.dashboards = len(dashboards)
    uids: dict[str, str] = {}
    queries = [q for file, d in dashboards.items() for q in _structure(file, d, uids, report)]
    report.queries = len(queries)
    _recordings(queries, recorded(root), report)
    _parse(queries, report)
    _links(root, dashboards, report)
    report.problems = list(dict.fromkeys(report.problems))  # one line per problem
    return report
