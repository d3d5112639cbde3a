"""Generated rules and tests, checked by running them with the real promtool."""

from __future__ import annotations

import re
import shutil
from collections import defaultdict
from pathlib import Path

import pytest
from rule_helpers import (
    generate_alerts,
    group_test_files,
    load_yaml,
    run_promtool,
    write_spec,
)
from watchkeeper import promtool
from watchkeeper.generate import alert_files
from watchkeeper.load import load_spec

HERE = Path(__file__).parent
REPO = HERE.parent.parent
EXAMPLE = REPO / "spec" / "services.yaml"


@pytest.mark.slow
def test_example_spec_passes_promtool_check_and_test(tmp_path, promtool_path):
    alerts = generate_alerts(EXAMPLE, tmp_path)
    checked, tested = run_promtool(alerts)
    assert checked.ok, checked.output
    assert tested.ok, tested.output
    # A test file per rule group of the 3 services, each reported on its own.
    assert len(tested.files) == len(list((alerts / "tests").glob("*.test.yml"))) > 3


def test_committed_alerts_match_a_fresh_generation():
    files = alert_files(load_spec(EXAMPLE), EXAMPLE.name)
    for relative, text in files.items():
        assert (REPO / relative).read_text() == text, f"{relative} is stale: run `make`"
    committed = {str(p.relative_to(REPO)) for p in (REPO / "alerts").rglob("*.yml")}
    assert committed == set(files)


def _seconds(duration: str) -> int:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    return round(sum(float(n) * units[u] for n, u in re.findall(r"(\d+)(ms|s|m|h|d)", duration)))


def test_every_alert_has_firing_quiet_and_not_yet_cases(tmp_path):
    """Each (alert, severity) fires in some case, every alert name is also checked quiet,
    and every alert with a `for` is checked not yet firing one step before it fires."""
    alerts = generate_alerts(EXAMPLE, tmp_path)
    for rules_path in alerts.glob("*.rules.yml"):
        declared = {(rule["alert"], rule["labels"]["severity"], rule.get("for", "0s"))
                    for group in load_yaml(rules_path)["groups"] for rule in group["rules"]
                    if "alert" in rule}
        files = group_test_files(alerts, *rules_path.name.removesuffix(".rules.yml")
                                 .split(".", 1))
        fired, quiet, not_yet = set(), set(), set()
        for group in (g for path in files for g in load_yaml(path)["tests"]):
            step = _seconds(group["interval"])
            checks = defaultdict(dict)  # alertname -> eval seconds -> expected alerts
            for check in group.get("alert_rule_test", []):
                checks[check["alertname"]][_seconds(check["eval_time"])] = check["exp_alerts"]
                if not check["exp_alerts"]:
                    quiet.add(check["alertname"])
                for alert in check["exp_alerts"]:
                    fired.add((check["alertname"], alert["exp_labels"]["severity"]))
            for name, by_time in checks.items():
                if any(expected and by_time.get(at - step) == []
                       for at, expected in by_time.items()):
                    not_yet.add(name)
        for name, severity, for_ in declared:
            assert (name, severity) in fired, f"{rules_path.name}: {name}/{severity} never fires"
            assert name in quiet, f"{rules_path.name}: {name} is never checked quiet"
            if _seconds(for_) > 0:
                assert name in not_yet, (f"{rules_path.name}: {name} is never checked one "
                                         "step before it fires")


def _mutate(rules: Path, pattern: str, replacement: str) -> None:
    text = rules.read_text()
    mutated, count = re.subn(pattern, replacement, text, count=1)
    assert count == 1, pattern
    rules.write_text(mutated)


@pytest.mark.slow
def test_generated_tests_catch_a_wrong_threshold(tmp_path, promtool_path):
    """The generated tests are not vacuous: a budget edited by hand makes them fail."""
    alerts = generate_alerts(EXAMPLE, tmp_path)
    rules = alerts / "festivals-api.http.rules.yml"
    _mutate(rules, r'(p99_rate5m\{service="festivals-api"\} >) 1\n', r"\1 2\n")
    result = promtool.test_rules(group_test_files(alerts, "festivals-api", "http"))
    assert not result.ok
    assert "HttpLatencyP99High" in result.output


@pytest.mark.slow
def test_generated_tests_catch_a_missing_traffic_guard(tmp_path, promtool_path):
    """Dropping the minimum-traffic guard makes the sparse-traffic scenario fire."""
    alerts = generate_alerts(EXAMPLE, tmp_path)
    rules = alerts / "nextevent-api.http.rules.yml"
    text = rules.read_text()
    rules.write_text(re.sub(r"\n\s*and on\(service\) service:http_request_duration_seconds_count"
                            r":rate5m\{service=\"nextevent-api\"\} \* 300 >= 10", "", text))
    result = promtool.test_rules(group_test_files(alerts, "nextevent-api", "http"))
    assert not result.ok
    assert "too little traffic" in result.output


def test_hand_made_p99_incident_pages_within_for_plus_one_window(tmp_path, promtool_path):
    alerts = generate_alerts(HERE / "scenarios" / "checkout.yaml", tmp_path)
    shutil.copy(HERE / "scenarios" / "p99_incident.test.yml", alerts / "tests")
    result = promtool.test_rules([alerts / "tests" / "p99_incident.test.yml"])
    assert result.ok, result.output


def test_each_test_file_loads_every_rule_it_checks_and_no_other_group(tmp_path):
    """A test file lists only the rule files its checks read (promtool evaluates every
    listed rule at every step), and never fewer: a quiet check of an alert that is not
    loaded would pass without proving anything. A file named for several groups
    (``<service>.http+cache.test.yml``) lists each of them and tests each one's alerts; every
    group with alerts is tested (a group's scenarios checking another group's alerts may be
    in a file of their own, ``<service>.leak.with-runtime.test.yml``)."""
    alerts = generate_alerts(EXAMPLE, tmp_path)
    tested = []
    for test_path in sorted((alerts / "tests").glob("*.test.yml")):
        document = load_yaml(test_path)
        listed = [load_yaml(test_path.parent / name) for name in document["rule_files"]]
        rules = [rule for rules in listed for group in rules["groups"]
                 for rule in group["rules"]]
        defined = {rule["alert"] for rule in rules if "alert" in rule}
        records = {rule["record"] for rule in rules if "record" in rule}
        checked = {check["alertname"] for group in document["tests"]
                   for check in group.get("alert_rule_test", [])}
        exprs = [check["expr"] for group in document["tests"]
                 for check in group.get("promql_expr_test", [])]
        assert checked or exprs, test_path.name
        assert checked <= defined, (test_path.name, checked - defined)
        for expr in exprs:
            read = set(re.findall(r"[a-z_]+:[a-zA-Z0-9_:]+", expr))
            assert read <= records, (test_path.name, read - records)
        service, sections = test_path.name.removesuffix(".test.yml").split(".", 1)
        sections = sections.split(".with-")[0]  # `.with-runtime`: also lists those
        own = [f"../{service}.{section}.rules.yml" for section in sections.split("+")]
        tested += own
        # what its own groups' rules read of other groups (the SLO report: the SLO rates)
        own_reads = {name for rule_name, rules_doc in zip(document["rule_files"], listed,
                                                          strict=True) if rule_name in own
                     for g in rules_doc["groups"] for r in g["rules"]
                     for name in re.findall(r"[a-z_]+:[a-zA-Z0-9_:]+", r["expr"])}
        for name, rules_doc in zip(document["rule_files"], listed, strict=True):
            rules_in = [r for g in rules_doc["groups"] for r in g["rules"]]
            alerts_in = {r.get("alert") for r in rules_in} - {None}
            if name in own:  # its own groups: each has alerts checked here
                assert not alerts_in or alerts_in & checked, (test_path.name, name)
            else:  # another group's file only when one of its alerts is checked here, or
                # its recordings are read by the file's own rules
                assert alerts_in & checked or own_reads & {r.get("record") for r in rules_in}, \
                    (test_path.name, name)
        assert set(own) <= set(document["rule_files"]), test_path.name
    with_alerts = [f"../{p.name}" for p in alerts.glob("*.rules.yml")
                   if any("alert" in r for g in load_yaml(p)["groups"] for r in g["rules"])]
    # every group with alerts is tested; of the others, the SLO report has a test too
    assert set(tested) == {*with_alerts, "../tickets-api.slo-report.rules.yml"}


@pytest.mark.slow
@pytest.mark.parametrize(("group", "pattern", "replacement", "alert"), [
    # cases of a per-instance budget run side by side: a wrong budget still fails
    ("runtime", r"(process_resident_memory_bytes\{job=\"festivals-api\"\} >) 536870912\n",
     r"\1 436870912\n", "MemoryHigh"),
    # quantiles tested from one histogram: a wrong p50 budget still fails
    ("http", r"(p50_rate5m\{service=\"festivals-api\"\} >) 0\.05\n", r"\1 0.04\n",
     "HttpLatencyP50High"),
    # latency and errors from one set of series (the count split by status): a wrong
    # budget or traffic guard of either still fails in the shared groups
    ("http", r'(error_ratio_rate5m\{service="festivals-api"\} >) 0\.001\n', r"\1 0.0012\n",
     "HttpErrorRatioHigh"),
    ("http", r'(p99_rate5m\{service="festivals-api"\} >) 1\n', r"\1 1.2\n",
     "HttpLatencyP99High"),
    ("http", r'(error_ratio_rate5m\{service="festivals-api"\} > 0\.01\n\s+and on\(service\) '
     r'\S+ \* 300 >=) 10\n', r"\1 1\n", "HttpErrorRatioHigh"),
    ("http", r'(p50_rate5m\{service="festivals-api"\} > 0\.2\n\s+and on\(service\) '
     r'\S+ \* 300 >=) 10\n', r"\1 1\n", "HttpLatencyP50High"),
    # caches tested side by side: a wrong budget of the second cache still fails
    ("cache", r'(cache="festivals"\} <) 0\.8\n', r"\1 0.7\n", "CacheHitRatioLow"),
    # absent alerts of several metrics in one group: one reading the wrong metric fails
    ("availability", r"absent\(go_goroutines\{", "absent(go_threads{", "go_goroutines"),
    # tests step at half the `for` (signals.common.test_step): a `for` halved still fails
    ("http", r"(alert: HttpLatencyP50High\n(?:.*\n){3}\s+for:) 5m\n", r"\1 2m30s\n",
     "HttpLatencyP50High"),
    ("cache", r"(\s+for:) 10m\n", r"\1 5m\n", "CacheHitRatioLow"),
])
def test_shared_test_groups_still_catch_a_wrong_rule(tmp_path, promtool_path, group, pattern,
                                                      replacement, alert):
    """Scenarios sharing a promtool test group prove as much as apart: a rule edited by
    hand fails its group's test."""
    alerts = generate_alerts(EXAMPLE, tmp_path)
    _mutate(alerts / f"festivals-api.{group}.rules.yml", pattern, replacement)
    result = promtool.test_rules(group_test_files(alerts, "festivals-api", group))
    assert not result.ok
    assert alert in result.output


@pytest.mark.slow
@pytest.mark.parametrize(("group", "edits"), [
    # the flat case beside the climb still proves the steady-growth condition
    ("leak", [(r"(predict_linear1h_4h\{service=\"festivals-api\"\} >) 10000\n", r"\1 8000\n"),
              (r"(min_over_time\(go_goroutines\{job=\"festivals-api\"\}\[15m\]\)\n\s+)>",
               r"\1>=")]),
    # and its static check: a wrong warning budget fails on the flat case's instance
    ("runtime", [(r"(go_goroutines\{job=\"festivals-api\"\} >) 5000\n", r"\1 9500\n")]),
])
def test_flat_leak_case_beside_the_climb_still_catches_a_wrong_rule(tmp_path, promtool_path,
                                                                     group, edits):
    alerts = generate_alerts(EXAMPLE, tmp_path)
    for pattern, replacement in edits:
        _mutate(alerts / f"festivals-api.{group}.rules.yml", pattern, replacement)
    result = promtool.test_rules([alerts / "tests" / "festivals-api.leak.with-runtime.test.yml"])
    assert not result.ok
    assert "host-b:9090" in result.output and "flat value" in result.output


def test_scenarios_reading_each_others_series_do_not_share_a_group():
    """Packing is by what each check reads through the rules: independent scenarios share
    a group, a scenario whose series feed another's alert does not, nor two checking the
    same alert."""
    from watchkeeper.model import Alert, AlertCheck, Piece, Recording, Scenario, Series
    from watchkeeper.rule_tests import pack

    rules = [Piece("g", recordings=[Recording("r:a", "sum(rate(a_total[5m]))")],
                   alerts=[Alert("A", "r:a > 1", 0.0, {}, {}), Alert("B", "b > 1", 0.0, {}, {}),
                           Alert("C", "a_total > 0 and b > 0", 0.0, {}, {})])]

    def scenario(name, metric, alert):
        return Scenario(name, (Series(f'{metric}{{i="1"}}', "1x3"),), (AlertCheck(60, alert),))

    a, b, c = scenario("a", "a_total", "A"), scenario("b", "b", "B"), scenario("c", "x", "C")
    again = scenario("a again", "a_total", "A")
    packed = pack([a, b, c, again], rules)
    assert [s.name for s in packed] == ["a; b", "c", "a again"]
    unknown = Scenario("u", (Series("z", "1x3"),), (AlertCheck(60, "Elsewhere"),))
    assert len(pack([a, unknown], rules)) == 2  # an alert not in the rules reads everything


def test_test_files_are_shared_only_where_promtool_does_less_work():
    """Groups of one step share a test file when their test groups line up (fewer test
    groups, each loading the rules of both); a group with one test group and many rules
    stays apart, and groups built for different steps never share."""
    from watchkeeper.model import Alert, AlertCheck, Piece, Scenario, Series
    from watchkeeper.rule_tests import layout

    def group(name, cases, rules=2, step=None):
        alerts = [Alert(f"{name}{i}", f"{name}_m > {i}", 0.0, {}, {}) for i in range(rules)]
        scenarios = [Scenario(f"{name} {case}", (Series(f"{name}_m", f"{case}x8"),),
                              (AlertCheck(360, f"{name}0"),)) for case in range(cases)]
        return Piece(name, alerts=alerts, scenarios=scenarios, test_step=step)

    http, cache, runtime = group("http", 4), group("cache", 4), group("runtime", 1, rules=40)
    slow = group("leak", 4, step=300.0)
    assert layout([http, cache, runtime, slow, Piece("none")], 60.0) == [
        [http, cache], [runtime], [slow]]


def test_a_leak_group_at_the_default_step_keeps_its_own_test_file(tmp_path, promtool_path):
    """A leak window short enough that its test step is the service's own: its scenarios
    are still built apart (found by the property test)."""
    spec = write_spec(tmp_path, {"version": 1, "defaults": {"for": "0s", "min_events": 1},
                                 "services": [{"name": "svc-0", "selector": {"job": "svc-0"},
                                               "language": "go", "runtime": {
                                                   "memory": {"warning": "64MiB"},
                                                   "goroutines": {"warning": 100, "critical": 1000,
                                                                  "leak": {"window": "10m",
                                                                           "horizon": "30m"}}}}]})
    alerts = generate_alerts(spec, tmp_path / "out")
    assert (alerts / "tests" / "svc-0.leak.test.yml").is_file()
    checked, tested = run_promtool(alerts)
    assert checked.ok and tested.ok, tested.output


def test_what_a_rule_reads_follows_recordings_in_chains_and_in_circles():
    """`reads` closes over recordings (each chain link computed once); rules reading each
    other in a circle still get everything the circle reads."""
    from watchkeeper.model import Alert, Piece, Recording
    from watchkeeper.rule_tests import reads

    chain = Piece("g", recordings=[Recording("r:b", "sum(b)"), Recording("r:a", "r:b + a")],
                  alerts=[Alert("A", "r:a > 1", 0.0, {}, {})])
    assert reads([chain])["A"] == {"r:a", "r:b", "a", "b", "sum"}
    circle = Piece("c", recordings=[Recording("x", "y + m"), Recording("y", "x + n")],
                   alerts=[Alert("X", "x > 0", 0.0, {}, {})])
    found = reads([circle])
    assert found["X"] == found["x"] | {"x"} == {"x", "y", "m", "n"}
    assert found["y"] == {"x", "y", "m", "n"}


def test_what_rules_of_several_groups_read_is_closed_across_them():
    """`reads` of several groups merges each group's closures only when they keep to
    themselves; a group reading another's recording, or a name both define, is closed
    over all of them together, as if they were one group."""
    from watchkeeper.model import Alert, Piece, Recording
    from watchkeeper.rule_tests import reads

    apart = [Piece("a", recordings=[Recording("r:a", "sum(a)")],
                   alerts=[Alert("A", "r:a > 1", 0.0, {}, {})]),
             Piece("b", alerts=[Alert("B", "b > 1", 0.0, {}, {})])]
    assert reads(apart) == {"r:a": {"sum", "a"}, "A": {"r:a", "sum", "a"}, "B": {"b"}}
    across = [Piece("a", recordings=[Recording("r:a", "sum(a)")]),
              Piece("b", alerts=[Alert("B", "r:a > 1", 0.0, {}, {})])]
    assert reads(across)["B"] == {"r:a", "sum", "a"}
    assert reads(across[1:])["B"] == {"r:a"}  # alone, the recording is not known
    twice = [Piece("a", alerts=[Alert("X", "a > 1", 0.0, {}, {})]),
             Piece("b", alerts=[Alert("X", "b > 1", 0.0, {}, {})])]
    assert reads(twice)["X"] == {"a", "b"}
    merged = Piece("ab", recordings=across[0].recordings, alerts=across[1].alerts)
    assert reads(across) == reads([merged])
