"""Importers: OpenSLO v1 documents, and one clear error per field they cannot translate."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from watchkeeper import promtool
from watchkeeper.cli import main
from watchkeeper.generate import alert_files
from watchkeeper.load import load_spec
from watchkeeper.writers import write_tree

FIXTURES = Path(__file__).parent / "fixtures"


def run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["import", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_openslo_v1_counters_become_rates_over_the_window(capsys, tmp_path):
    code, out, err = run(capsys, "openslo", FIXTURES / "openslo" / "checkout-v1.yaml")
    assert code == 0, err
    spec = yaml.safe_load(out)
    [service] = spec["services"]
    assert service["name"] == "checkout" and service["selector"] == {"job": "checkout"}
    first, second = service["slos"]
    assert (first["name"], first["objective"], first["window"]) == \
        ("checkout-availability", "99%", "28d")
    assert first["indicator"]["events"] == {
        "errors": 'sum(rate(http_requests_total{job="checkout"}[{{window}}])) - '
                  'sum(rate(http_requests_total{job="checkout",code!~"5.."}[{{window}}]))'
        .replace(" - ", ") - (").join("()"),
        "total": 'sum(rate(http_requests_total{job="checkout"}[{{window}}]))'}
    assert (second["name"], second["objective"], second["window"]) == \
        ("checkout-errors", "99.5%", "7d")
    assert second["indicator"]["events"]["errors"] == \
        'sum(rate(checkout_failures_total{job="checkout"}[{{window}}]))'
    # the imported spec generates burn-rate alerts that promtool accepts
    path = tmp_path / "spec.yaml"
    path.write_text(out)
    write_tree(tmp_path, alert_files(load_spec(path), "spec.yaml"), owned=("alerts",))
    if shutil.which("promtool"):
        checked = promtool.check_rules([tmp_path / "alerts" / "checkout.slo.rules.yml"])
        assert checked.ok, checked.output
    rules = (tmp_path / "alerts" / "checkout.slo.rules.yml").read_text()
    assert rules.count("burn_tier: page-1h") == 2 and "(13.44 * 0.01)" in rules


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "in.yaml"
    path.write_text(text)
    return path


SLOTH = """version: prometheus/v1
service: shop
slos:
  - name: availability
    objective: {objective}
    sli:
{sli}
"""
EVENTS = """      events:
        error_query: sum(rate(x{{code="500"}}[{{{{.window}}}}]))
        total_query: sum(rate(x[{{{{.window}}}}]))"""


@pytest.mark.parametrize(("text", "where", "words"), [
    (SLOTH.format(objective=99.9, sli="      plugin: {id: sloth-common/availability}"),
     "in.yaml:7: slos[0].sli.plugin", "Go code"),
    (SLOTH.format(objective=90, sli=EVENTS), "slos[0]", "can never happen"),
    (SLOTH.replace("prometheus/v1", "sloth.slok.dev/v1").format(objective=99, sli=EVENTS),
     "in.yaml:1: version", "prometheus/v1"),
    (SLOTH.format(objective=99, sli=EVENTS) + "    window: 7d\n",
     "in.yaml:10: slos[0].window", "unknown Sloth SLO field"),
])
def test_sloth_fields_it_cannot_translate_are_errors(capsys, tmp_path, text, where, words):
    code, out, err = run(capsys, "sloth", _write(tmp_path, text))
    assert code == 2 and out == ""
    assert where in err and words in err and "Traceback" not in err


OPENSLO = """apiVersion: openslo/v1
kind: SLO
metadata: {{name: a}}
spec:
  service: shop
  budgetingMethod: {budgeting}
  timeWindow: [{window}]
  indicator:
    spec:
      ratioMetric:
        counter: true
        good: {{metricSource: {{type: Prometheus, spec: {{query: ok_total}}}}}}
        total: {{metricSource: {{type: Prometheus, spec: {{query: all_total}}}}}}
  objectives: [{{target: 0.99}}]
"""
ROLLING = "{duration: 28d, isRolling: true}"


@pytest.mark.parametrize(("text", "where", "words"), [
    (OPENSLO.format(budgeting="Timeslices", window=ROLLING), "spec.budgetingMethod",
     "Timeslices"),
    (OPENSLO.format(budgeting="Occurrences", window="{duration: 1M, calendar: {startTime: x}}"),
     "spec.timeWindow[0]", "calendar"),
    (OPENSLO.format(budgeting="Occurrences", window=ROLLING).replace("counter: true",
                                                                    "counter: false"),
     "ratioMetric.good.metricSource.spec.query", "not a counter"),
    (OPENSLO.format(budgeting="Occurrences", window=ROLLING).replace(
        "objectives: [{target: 0.99}]", "objectives: [{target: 0.99}, {target: 0.9}]"),
     "spec.objectives", "exactly one objective"),
    ("apiVersion: openslo/v1\nkind: SLI\nmetadata: {name: a}\n", "kind", "inline"),
])
def test_openslo_fields_it_cannot_translate_are_errors(capsys, tmp_path, text, where, words):
    code, out, err = run(capsys, "openslo", _write(tmp_path, text))
    assert code == 2 and out == ""
    assert where in err and words in err and "Traceback" not in err


def test_output_file_never_overwrites_a_file_it_did_not_write(capsys, tmp_path):
    source = FIXTURES / "sloth" / "getting-started.yml"
    target = tmp_path / "spec.yaml"
    target.write_text("hand-written\n")
    code, _, err = run(capsys, "sloth", source, "-o", target)
    assert code == 2 and "not overwriting" in err
    assert target.read_text() == "hand-written\n"
    target.unlink()
    assert run(capsys, "sloth", source, "-o", target)[0] == 0
    assert run(capsys, "sloth", source, "-o", target)[0] == 0  # its own output: rewritten
    assert load_spec(target).services[0].budget("slos")[0].name == "requests-availability"
