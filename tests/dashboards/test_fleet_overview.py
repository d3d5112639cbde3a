"""The overview at scale: above `DETAILED_OVERVIEW_MAX` services it is the compact fleet view,
whose panels do not grow with the spec, whose queries run in Prometheus (promtool) and
answer which service is past which budget, and whose links open each service's dashboard."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from watchkeeper import cli, naming, promtool
from watchkeeper.check import panels, referenced
from watchkeeper.dashboards.build import DETAILED_OVERVIEW_MAX, overview_text
from watchkeeper.generate import generate
from watchkeeper.load import load_spec
from watchkeeper.model import Spec

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from grafana_standin import running

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO / "spec" / "services.yaml"
LONG = "a-service-with-a-name-of-forty-letters-x"  # dashboard uid shortened with a hash


@pytest.fixture(scope="module")
def example() -> Spec:
    return load_spec(SPEC, {})


def fleet(example: Spec, count: int, names: tuple[str, ...] = ()) -> Spec:
    """`count` services cloned from the example spec's (tickets-api declares SLOs), plus
    services named `names`."""
    base = example.services
    services = [replace(base[i % len(base)], name=f"svc-{i}") for i in range(count)]
    services += [replace(base[-1], name=name) for name in names]
    return replace(example, services=tuple(services))


def overview(spec: Spec) -> dict:
    return json.loads("".join(overview_text(spec.services)))


def test_detailed_up_to_the_threshold_then_compact(example):
    detailed = overview(fleet(example, DETAILED_OVERVIEW_MAX))
    rows = [p["title"] for p in detailed["panels"] if p["type"] == "row"]
    assert rows[:DETAILED_OVERVIEW_MAX] == [f"svc-{i}" for i in range(DETAILED_OVERVIEW_MAX)]
    compact = overview(fleet(example, DETAILED_OVERVIEW_MAX + 1))
    assert not [p for p in compact["panels"] if p["type"] == "row"]
    assert compact["uid"] == naming.OVERVIEW_UID == detailed["uid"]
    assert compact["links"] == detailed["links"]  # the dropdown of every service dashboard


def test_compact_overview_does_not_grow_with_the_services(example):
    small = "".join(overview_text(fleet(example, 30).services))
    large = "".join(overview_text(fleet(example, 3000).services))
    assert large == small  # adding services leaves the overview as it is (nothing to deploy)
    assert len(json.loads(large)["panels"]) == 6
    queries = [t["expr"] for p in json.loads(large)["panels"] for t in p["targets"]]
    assert len(queries) == 6 and all("svc-" not in q for q in queries)


def test_every_panel_is_described_with_a_unit(example):
    for panel in overview(fleet(example, 30))["panels"]:
        assert panel["description"] and panel["fieldConfig"]["defaults"]["unit"], panel


def test_without_slos_there_is_no_slo_table(example):
    no_slo = replace(example, services=tuple(
        replace(s, name=f"svc-{i}") for i in range(30) for s in example.services[:1]))
    assert not no_slo.services[0].budget("slos")
    titles = [p["title"] for p in overview(no_slo)["panels"]]
    assert not [t for t in titles if t.startswith("SLOs")]


def _queries(dashboard: dict) -> dict[str, str]:
    return {p["title"]: p["targets"][0]["expr"] for p in dashboard["panels"]}


def _test(folder: Path, series: list[tuple[str, str]], cases: list[dict]) -> str:
    """Evaluate the overview's queries on `series` with promtool; its output on failure."""
    test = {"evaluation_interval": "1m", "tests": [{
        "interval": "1m", "input_series": [{"series": s, "values": v} for s, v in series],
        "promql_expr_test": cases}]}
    path = folder / "fleet.test.yml"
    path.write_text(yaml.safe_dump(test, sort_keys=False))
    run = subprocess.run([promtool.find_promtool(), "test", "rules", str(path)],
                         capture_output=True, text=True, check=False)
    return "" if run.returncode == 0 else run.stdout + run.stderr


def test_queries_find_the_services_past_a_budget_and_their_dashboards(example, tmp_path):
    spec = fleet(example, 30, (LONG,))
    queries = _queries(overview(spec))
    uids = {s.name: json.loads(generate(replace(spec, services=(s,)), "x", ("dashboards",))[
        f"dashboards/{s.name}.json"])["uid"] for s in spec.services if s.name in ("svc-1", LONG)}
    assert uids[LONG] != f"wk-{LONG}"  # shortened with a hash: the query must map it
    alert = 'ALERTS{{alertname="{a}",alertstate="{state}",service="{s}",signal="{sig}",' \
            'severity="{sev}"}}'
    series = [
        (alert.format(a="HttpLatencyP99High", state="firing", s="svc-1", sig="latency",
                      sev="critical"), "1x10"),
        (alert.format(a="HttpLatencyP50High", state="firing", s="svc-1", sig="latency",
                      sev="critical"), "1x10"),
        (alert.format(a="CacheHitRatioLow", state="firing", s=LONG, sig="cache",
                      sev="warning"), "1x10"),
        (alert.format(a="MemoryHigh", state="pending", s="svc-2", sig="memory",
                      sev="critical"), "1x10"),  # pending: not past its `for` yet
        ('ALERTS{alertname="Other",alertstate="firing",service="svc-3",severity="critical"}',
         "1x10"),  # not one of watchkeeper's alerts (no signal label)
        (f'{{__name__="slo:error_budget_remaining:ratio",service="{LONG}",slo="availability"}}',
         "0.1x10"),
    ]
    row = '{{dashboard="{d}",service="{s}",severity="{sev}",signal="{sig}"}}'
    cases = [
        {"expr": queries["Firing alerts by service"], "eval_time": "5m", "exp_samples": [
            {"labels": row.format(d=uids["svc-1"], s="svc-1", sev="critical", sig="latency"),
             "value": 2},
            {"labels": row.format(d=uids[LONG], s=LONG, sev="warning", sig="cache"),
             "value": 1}]},
        {"expr": queries["Services past a critical budget"], "eval_time": "5m",
         "exp_samples": [{"labels": "{}", "value": 1}]},
        {"expr": queries["Services past a warning budget"], "eval_time": "5m",
         "exp_samples": [{"labels": "{}", "value": 1}]},
        {"expr": queries["Firing alerts"], "eval_time": "5m",
         "exp_samples": [{"labels": "{}", "value": 3}]},
        {"expr": queries["Firing alerts over time"], "eval_time": "5m", "exp_samples": [
            {"labels": '{severity="critical"}', "value": 2},
            {"labels": '{severity="warning"}', "value": 1}]},
        {"expr": queries["SLOs: error budget remaining, lowest first"], "eval_time": "5m",
         "exp_samples": [{"labels": f'{{__name__="slo:error_budget_remaining:ratio",'
                                    f'dashboard="{uids[LONG]}",service="{LONG}",'
                                    'slo="availability"}', "value": 0.1}]},
    ]
    assert _test(tmp_path, series, cases) == ""
    quiet = [{"expr": queries["Services past a critical budget"], "eval_time": "5m",
              "exp_samples": [{"labels": "{}", "value": 0}]}]
    assert _test(tmp_path, series[3:5], quiet) == ""  # pending and foreign alerts: 0


def test_service_column_links_to_the_dashboard_in_the_hidden_uid_column(example):
    table = next(p for p in overview(fleet(example, 30))["panels"]
                 if p["title"] == "Firing alerts by service")
    overrides = {o["matcher"]["options"]: o["properties"]
                 for o in table["fieldConfig"]["overrides"]}
    [link] = next(p["value"] for p in overrides["service"] if p["id"] == "links")
    assert link["url"].startswith("/d/${__data.fields.dashboard}")
    assert {"id": "custom.hidden", "value": True} in overrides["dashboard"]
    assert "dashboard" in table["targets"][0]["expr"]
    assert table["targets"][0]["instant"] is True and table["targets"][0]["format"] == "table"


@pytest.fixture(scope="module")
def tree(example, tmp_path_factory) -> Path:
    """A generated 30-service output folder, as a user gets it."""
    root = tmp_path_factory.mktemp("fleet")
    for path, text in generate(fleet(example, 30), SPEC.name).items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text, encoding="utf-8")
    return root


def test_fleet_queries_read_generated_recordings_and_pass_check(tree, capsys):
    records = {rule["record"] for path in (tree / "alerts").glob("*.rules.yml")
               for group in yaml.safe_load(path.read_text())["groups"]
               for rule in group["rules"] if "record" in rule}
    dashboard = json.loads((tree / "dashboards" / "overview.json").read_text())
    used = {name for p in panels(dashboard) for t in p["targets"] for name in referenced(t["expr"])}
    assert used == {"slo:error_budget_remaining:ratio"} and used <= records
    assert cli.main(["check", str(tree)]) == 0, capsys.readouterr().out


def test_fleet_overview_deploys_and_round_trips(tree, monkeypatch, capsys):
    with running() as (url, state):
        for name in ("GRAFANA_TOKEN_FILE", "GRAFANA_USER", "GRAFANA_PASSWORD",
                     "GRAFANA_PASSWORD_FILE"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("GRAFANA_URL", url)
        monkeypatch.setenv("GRAFANA_TOKEN", state.token)
        assert cli.main(["deploy", str(tree)]) == 0, capsys.readouterr().out
        assert "31 created" in capsys.readouterr().out
        stored = state.dashboards[naming.OVERVIEW_UID]["dashboard"]
        local = json.loads((tree / "dashboards" / "overview.json").read_text())
        assert stored["panels"] == local["panels"]
        assert cli.main(["deploy", str(tree), "--dry-run"]) == 0
        assert "0 to create, 0 to update, 31 unchanged" in capsys.readouterr().out
