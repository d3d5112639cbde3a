"""`watchkeeper check`: passes on generated output, and names dashboard, panel and problem."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from watchkeeper import cli

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for folder in ("alerts", "dashboards"):
        shutil.copytree(REPO / folder, tmp_path / folder)
    return tmp_path


def _edit(tree: Path, name: str, change) -> None:
    path = tree / "dashboards" / f"{name}.json"
    dashboard = json.loads(path.read_text())
    change(dashboard)
    path.write_text(json.dumps(dashboard))


def _panel(dashboard, title):
    return next(p for p in dashboard["panels"] if p["title"] == title)


def test_generated_output_passes(tree, capsys):
    assert cli.main(["check", str(tree)]) == 0
    assert "0 problem(s)" in capsys.readouterr().out


def test_broken_query_is_named(tree, capsys):
    _edit(tree, "festivals-api", lambda d: _panel(d, "Request rate")["targets"][0].update(
        expr="sum(rate(http_requests_total[5m])"))
    assert cli.main(["check", str(tree)]) == 1
    out = capsys.readouterr().out
    assert ("FAIL dashboards/festivals-api.json: panel 'Request rate' (id 101): query A does "
            "not parse: ") in out
    assert "unclosed left parenthesis" in out


def test_missing_recording_is_named(tree, capsys):
    _edit(tree, "tickets-api", lambda d: _panel(d, "HTTP latency p99")["targets"][0].update(
        expr='service:http_request_duration_seconds:p98_rate5m{service="tickets-api"}'))
    assert cli.main(["check", str(tree)]) == 1
    assert ("dashboards/tickets-api.json: panel 'HTTP latency p99' (id 114): query A reads "
            "recording rule 'service:http_request_duration_seconds:p98_rate5m', which no file "
            "in alerts/ generates") in capsys.readouterr().out


def test_dangling_alert_link_missing_unit_and_duplicate_uid(tree, capsys):
    def break_it(dashboard):
        dashboard["panels"] = [p for p in dashboard["panels"] if p["id"] != 102]
        del _panel(dashboard, "Request rate")["fieldConfig"]["defaults"]["unit"]
    _edit(tree, "festivals-api", break_it)
    _edit(tree, "overview", lambda d: d.update(uid="wk-tickets-api"))
    assert cli.main(["check", str(tree)]) == 1
    out = capsys.readouterr().out
    assert ("alerts/festivals-api.http.rules.yml: alert HttpErrorRatioHigh: dashboard_url "
            "points at panel 102") in out
    assert "panel 'Request rate' (id 101): has no unit" in out
    assert ("dashboards/tickets-api.json: uid 'wk-tickets-api' is also used by "
            "dashboards/overview.json") in out


def test_no_dashboards_is_a_usage_error(tmp_path, capsys):
    assert cli.main(["check", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
