"""Spec validation: every bad input gets one clear message naming its path and line."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from watchkeeper.load import SpecError, load_services, load_spec, load_spec_file
from watchkeeper.profiles import profile
from watchkeeper.spec import NO_RECEIVERS

VALID = """\
version: 1
defaults:
  labels: {team: platform}
  for: 2m
  alertmanager: {receivers: none}
services:
  - name: checkout
    selector: {job: checkout}
    language: go
    labels: {team: payments}
    http:
      latency:
        p99: {warning: 200ms, critical: 1s}
"""


def problems(tmp_path, text: str, name: str = "spec.yaml") -> list[str]:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    with pytest.raises(SpecError) as caught:
        load_spec_file(path)
    return [f"{p.line}:{p.path}: {p.message}" for p in caught.value.problems]


def test_defaults_merge_and_service_keys_win(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(VALID)
    [service] = load_services(path)
    assert service.labels == {"team": "payments"}
    assert service.for_ == 120
    assert service.rate_window == 300
    assert service.profile == profile("go")


def test_metric_names_follow_language_and_overrides(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(VALID.replace("language: go", "language: python\n    metrics: "
                                  "{threads: app_threads}"))
    [service] = load_services(path)
    assert service.metric("threads") == "app_threads"
    assert service.metric("pool_in_use") == "db_client_connection_count"


def test_unknown_key_suggests_the_close_one(tmp_path):
    found = problems(tmp_path, VALID.replace("  for: 2m", "  fro: 2m"))
    assert found == ["4:defaults.fro: unknown key 'fro'; did you mean 'for'?"]


def test_bad_units_name_path_and_line(tmp_path):
    text = VALID.replace("{warning: 200ms, critical: 1s}", "{warning: 20 0ms, critical: 1s}")
    found = problems(tmp_path, text)
    assert found == ["13:services[0].http.latency.p99.warning: expected a duration such as "
                     "250us, 50ms, 1.5s or 2m, got '20 0ms'"]


def test_every_problem_is_reported_not_just_the_first(tmp_path):
    text = VALID.replace("{warning: 200ms, critical: 1s}", "{warning: 1s, critical: 200ms}")
    text += "      error_ratio: {warning: 80, critical: -1%}\n"
    found = problems(tmp_path, text)
    assert len(found) == 3
    assert found[0].startswith("13:services[0].http.latency.p99: 'warning' must be below")
    assert "did you mean '80%'" in found[1]
    assert found[2].startswith("14:services[0].http.error_ratio.critical:")


def test_lower_is_worse_order_for_cache_hit_ratio(tmp_path):
    text = VALID + ("    caches:\n      - name: wallets\n"
                    "        hit_ratio: {warning: 50%, critical: 80%}\n")
    [found] = problems(tmp_path, text)
    assert found.startswith("16:services[0].caches[0].hit_ratio: lower is worse")


def test_goroutines_on_a_python_service(tmp_path):
    text = VALID.replace("language: go", "language: python")
    text += "    runtime:\n      goroutines: {warning: 10, critical: 20}\n"
    [found] = problems(tmp_path, text)
    assert found.startswith("7:services[0]: 'runtime.goroutines' is for go services")


def test_duplicate_service_names(tmp_path):
    text = VALID + "  - name: checkout\n    selector: {job: b}\n    language: go\n"
    [found] = problems(tmp_path, text)
    assert found == "6:services: service names must be unique, repeated: checkout"


def test_yaml_syntax_error_has_a_line(tmp_path):
    [found] = problems(tmp_path, VALID + "  - name: [broken\n")
    assert found == ("15:: YAML syntax error: expected ',' or ']', but got '<stream end>' "
                     "(while parsing a flow sequence started on line 14)")


def test_key_written_twice(tmp_path):
    [found] = problems(tmp_path, VALID.replace("  for: 2m", "  for: 2m\n  for: 3m"))
    assert found == "5:defaults.for: key written twice; keep one"


def test_reserved_alert_labels_are_refused(tmp_path):
    [found] = problems(tmp_path, VALID.replace("{team: payments}", "{severity: high}"))
    assert "label 'severity' is set by watchkeeper" in found


def test_leak_needs_a_critical_budget(tmp_path):
    text = VALID + "    runtime:\n      threads: {warning: 10, leak: {window: 1h, horizon: 4h}}\n"
    [found] = problems(tmp_path, text)
    assert "'leak' predicts when 'critical' is crossed" in found


def test_hundred_percent_utilization_can_never_fire(tmp_path):
    text = VALID + "    database:\n      pool:\n        utilization: {critical: 100%}\n"
    [found] = problems(tmp_path, text)
    assert "never fires" in found


def test_jsonnet_spec_with_ext_str(tmp_path):
    path = tmp_path / "spec.jsonnet"
    path.write_text(textwrap.dedent("""\
        local env = std.extVar('env');
        {
          version: 1,
          defaults: { labels: { env: env }, alertmanager: { receivers: 'none' } },
          services: [
            { name: 'api-' + env, selector: { job: 'api' }, language: 'go',
              runtime: { memory: { critical: '1GiB' } } },
          ],
        }
    """))
    [service] = load_services(path, {"env": "prod"})
    assert service.name == "api-prod"
    assert service.labels == {"env": "prod"}
    assert service.budget("runtime.memory").critical == 2**30


def test_bad_jsonnet_is_one_clear_error(tmp_path):
    path = tmp_path / "spec.jsonnet"
    path.write_text("{ version: 1, services: [ }")
    with pytest.raises(SpecError) as caught:
        load_spec_file(path)
    [problem] = caught.value.problems
    assert problem.message.startswith("Jsonnet error:")


def test_runbook_url_placeholders_are_checked(tmp_path):
    text = VALID.replace("  for: 2m", '  for: 2m\n  runbook_url: "https://x/{servce}/{alert}"')
    [found] = problems(tmp_path, text)
    assert found.startswith("5:defaults.runbook_url: unknown placeholder {servce}")


def test_messages_never_name_internal_classes(tmp_path):
    text = VALID.replace("p99: {warning: 200ms, critical: 1s}", "p99: 500ms")
    text += "    caches: {a: 1}\n"
    found = problems(tmp_path, text)
    assert found == [
        "13:services[0].http.latency.p99: expected a mapping with keys warning, critical, "
        "for, got '500ms'",
        "14:services[0].caches: expected a list (items starting with '- '), got {'a': 1}"]
    assert not any("Thresholds" in f or "instance of" in f for f in found)


def test_jsonnet_errors_keep_their_file_and_line(tmp_path):
    (tmp_path / "budgets.libsonnet").write_text("{\n  p99: std.extVar('missing'),\n}\n")
    path = tmp_path / "spec.jsonnet"
    path.write_text("local b = import 'budgets.libsonnet';\n{ version: 1, services: [\n"
                    "  { name: 'a', selector: {job: 'a'}, language: 'go', x: b.p99 } ] }\n")
    with pytest.raises(SpecError) as caught:
        load_spec_file(path)
    [problem] = caught.value.problems
    assert (Path(problem.file).name, problem.line) == ("budgets.libsonnet", 2)
    assert problem.message == "Jsonnet error: RUNTIME ERROR: undefined external variable: missing"


def test_schema_defaults_are_values_the_tool_accepts(tmp_path):
    """Every default the JSON Schema advertises, written into a spec, validates."""
    from watchkeeper.spec import SpecFile

    schema = SpecFile.model_json_schema(by_alias=True)
    alertmanager = {key: prop["default"] for key, prop in
                    schema["$defs"]["AlertmanagerSpec"]["properties"].items()
                    if "default" in prop}
    assert alertmanager["group_interval"] == "5m"
    path = tmp_path / "spec.yaml"
    path.write_text(VALID.replace("  alertmanager: {receivers: none}", "  alertmanager: "
                                  + json.dumps({**alertmanager, "receivers": "none"})))
    load_spec_file(path)
    described = [(name, key) for name, model in schema["$defs"].items()
                 for key, prop in model.get("properties", {}).items()
                 if not prop.get("description")]
    assert described == []


def test_spec_is_parsed_with_libyaml_when_pyyaml_has_it():
    import yaml
    from watchkeeper import load

    expected = yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader
    assert load.FastLoader is expected


@pytest.mark.parametrize("loader", ["libyaml", "pure-python"])
def test_both_parsers_give_the_same_lines_and_messages(tmp_path, monkeypatch, loader):
    import yaml
    from watchkeeper import load

    if loader == "pure-python":
        monkeypatch.setattr(load, "FastLoader", yaml.SafeLoader)
    elif not yaml.__with_libyaml__:
        pytest.skip("PyYAML was built without libyaml")
    assert problems(tmp_path, VALID + "  - name: [broken\n") == [
        "15:: YAML syntax error: expected ',' or ']', but got '<stream end>' "
        "(while parsing a flow sequence started on line 14)"]
    assert problems(tmp_path, VALID.replace("  for: 2m", "  for: 2m\n  for: 3m")) == [
        "5:defaults.for: key written twice; keep one"]
    assert problems(tmp_path, VALID.replace("  for: 2m", "  fro: 2m")) == [
        "4:defaults.fro: unknown key 'fro'; did you mean 'for'?"]


def test_merge_keys_still_resolve_and_lines_point_at_the_written_key(tmp_path):
    text = VALID.replace("defaults:\n", "x-budget: &budget {warning: 200ms, critical: 1s}\n"
                         "defaults:\n").replace(
        "p99: {warning: 200ms, critical: 1s}", "p99: {<<: *budget, critcal: 2s}")
    # The merged-in keys are valid; the misspelt one is reported on the line it is written.
    assert sorted(problems(tmp_path, text)) == [
        "14:services[0].http.latency.p99.critcal: unknown key 'critcal'; "
        "did you mean 'critical'?",
        "2:x-budget: unknown key 'x-budget'; expected one of: version, defaults, services"]


def test_no_receiver_is_invented(tmp_path):
    text = VALID.replace("  alertmanager: {receivers: none}\n", "")
    [found] = problems(tmp_path, text)
    assert found.startswith("2:defaults.alertmanager: no Alertmanager receivers declared: "
                            "add 'receivers:' with 'page'")
    assert "'receivers: none'" in found
    found = problems(tmp_path, text.replace("  for: 2m\n", "  for: 2m\n  alertmanager: {}\n"))
    assert found == [f"5:defaults.alertmanager: {NO_RECEIVERS}"]


def test_receivers_need_both_severities(tmp_path):
    text = VALID.replace("{receivers: none}",
                         "{receivers: {page: {webhook_url: 'http://127.0.0.1:1/p'}}}")
    assert problems(tmp_path, text) == [
        "5:defaults.alertmanager.receivers.ticket: required key is missing"]


def test_rules_only_spec_has_no_routing(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(VALID)
    spec = load_spec(path)
    assert spec.alertmanager is not None and spec.alertmanager.receivers is None


def test_schema_requires_receivers_and_offers_none():
    from watchkeeper.spec import SpecFile

    schema = SpecFile.model_json_schema(by_alias=True)
    routing = schema["$defs"]["AlertmanagerSpec"]
    assert "defaults" in schema["required"]
    assert schema["$defs"]["Defaults"]["required"] == ["alertmanager"]
    assert routing["required"] == ["receivers"]
    assert {"const": "none"} in routing["properties"]["receivers"]["anyOf"]
