"""SLOs: the burn-rate table, what the spec refuses, and the generated rules run in promtool.

Expected numbers here are worked out by hand from the SRE Workbook's table ("Alerting on
SLOs", 30-day window: 14.4x over 1h/5m, 6x over 6h/30m, 3x over 1d/2h, 1x over 3d/6h), not
read back from the code.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml
from rule_helpers import generate_alerts, write_spec
from watchkeeper import promtool
from watchkeeper.cli import main
from watchkeeper.load import SpecError, load_spec
from watchkeeper.slo_spec import DAY, TIERS, le_spellings

HERE = Path(__file__).parent
needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None, reason="needs promtool")


def spec(*slos: dict, http: dict | None = None, defaults: dict | None = None) -> dict:
    service = {"name": "shop", "selector": {"job": "shop"}, "language": "go",
               "http": http if http is not None else {}, "slos": list(slos)}
    return {"version": 1, "services": [service],
            "defaults": {"alertmanager": {"receivers": "none"}, **(defaults or {})}}


AVAILABILITY = {"name": "availability", "objective": "99.9%", "indicator": "availability"}


# --- The table -------------------------------------------------------------------------------


def test_tiers_are_the_workbook_table_for_30_days():
    table = [(t.name, t.severity, t.long, t.short, t.factor(30 * DAY)) for t in TIERS]
    assert table == [
        ("page-1h", "critical", 3600, 300, 14.4),
        ("page-6h", "critical", 21600, 1800, 6),
        ("ticket-1d", "warning", 86400, 7200, 3),
        ("ticket-3d", "warning", 259200, 21600, 1),
    ]


@pytest.mark.parametrize(("days", "factors"), [
    # same share of the budget per long window: 2% in 1h of 28d is 0.02 * 672h = 13.44x
    (28, [13.44, 5.6, 2.8, 1.0]),  # 3d: 0.1 * 28/3 = 0.933, raised to 1x
    (7, [3.36, 1.4, 1.0, 1.0]),  # 1d: 0.7x and 3d: 0.233x raised to 1x
    (90, [43.2, 18.0, 9.0, 3.0]),
])
def test_factors_scale_with_the_window_and_never_drop_below_1x(days, factors):
    assert [t.factor(days * DAY) for t in TIERS] == factors


def test_le_spellings_cover_go_python_and_prometheus_3():
    assert set(le_spellings(1.0)) >= {"1", "1.0"}
    assert le_spellings(0.4) == ["0.4"]
    assert set(le_spellings(1e6)) >= {"1e+06", "1000000.0"}  # Go client, Python client
    assert "5e-05" in le_spellings(0.00005)


# --- Refusals --------------------------------------------------------------------------------


def problems(tmp_path: Path, document: dict) -> str:
    with pytest.raises(SpecError) as error:
        load_spec(write_spec(tmp_path, document))
    return str(error.value)


def test_objective_whose_page_can_never_fire_is_refused(tmp_path):
    text = problems(tmp_path, spec({**AVAILABILITY, "objective": "90%"}))
    assert "services[0].slos[0]" in text
    assert "page-1h" in text and "alerting.tiers.page-1h: false" in text
    # switching the impossible tiers off is the way out: 14.4x and 6x of 10% exceed 100%
    ok = {**AVAILABILITY, "objective": "90%",
          "alerting": {"tiers": {"page-1h": False, "page-6h": False}}}
    assert load_spec(write_spec(tmp_path, spec(ok))).services[0].budget("slos")[0].objective == 0.9


def test_budget_spent_between_two_evaluations_is_refused(tmp_path):
    # 99.9999% of 30d at 100% errors lasts 2.6s, less than a 1m evaluation interval
    text = problems(tmp_path, spec({**AVAILABILITY, "objective": "99.9999%"}))
    assert "services[0].slos[0].objective" in text and "less than one rule evaluation" in text


def test_window_longer_than_declared_retention_is_refused(tmp_path):
    text = problems(tmp_path, spec(AVAILABILITY, defaults={"prometheus": {"retention": "15d"}}))
    assert "services[0].slos[0].window" in text and "retention" in text
    fine = spec({**AVAILABILITY, "window": "7d"}, defaults={"prometheus": {"retention": "15d"}})
    assert load_spec(write_spec(tmp_path, fine)).services[0].budget("slos")[0].window == 7 * DAY


def test_time_scale_must_divide_60_be_shared_and_leave_two_evaluations(tmp_path):
    fast = {**AVAILABILITY, "window": "12h", "time_scale": 60}
    text = problems(tmp_path, spec({**fast, "time_scale": 7}))
    assert "services[0].slos[0]" in text and "does not divide 60" in text
    text = problems(tmp_path, spec(fast, {**EXAMPLE, "window": "12h", "time_scale": 30},
                                   defaults={"prometheus": {"evaluation_interval": "1s"}}))
    assert "same time_scale" in text and "30, 60" in text
    # the 5m raw rate becomes 5s: two evaluations of the default 1m do not fit in it
    text = problems(tmp_path, spec(fast))
    assert "services[0].slos[0].time_scale" in text and "5s" in text


def test_latency_threshold_between_buckets_is_refused(tmp_path):
    slo = {"name": "latency", "objective": "99%", "indicator": {"latency": "300ms"}}
    text = problems(tmp_path, spec(slo, http={"buckets": [0.1, 0.25, 0.5, 1]}))
    assert "slos[0].indicator.latency" in text
    assert "not a bucket boundary" in text and "250ms or 500ms" in text


def test_indicator_needs_http_and_queries_need_window(tmp_path):
    document = spec(AVAILABILITY)
    del document["services"][0]["http"]
    assert "declare 'http:'" in problems(tmp_path, document)
    events = {"name": "payments", "objective": "99.5%", "indicator": {"events": {
        "errors": "sum(rate(payment_failures_total[5m]))", "total": "sum(rate(p[{{window}}]))"}}}
    assert "{{window}}" in problems(tmp_path, spec(events))


def test_cli_reports_refusal_with_exit_2_and_no_traceback(tmp_path, capsys):
    path = write_spec(tmp_path, spec({**AVAILABILITY, "objective": "90%"}))
    assert main(["validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "services[0].slos[0]" in err and "Traceback" not in err


# --- Generated rules in promtool -------------------------------------------------------------

EXAMPLE = {"name": "latency", "objective": "99%", "indicator": {"latency": "500ms"}}


@pytest.fixture(scope="module")
def shop_alerts(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("slo")
    return generate_alerts(write_spec(folder, spec(AVAILABILITY, EXAMPLE)), folder)


@pytest.mark.slow
@needs_promtool
def test_generated_slo_tests_pass(shop_alerts):
    check = promtool.check_rules([shop_alerts / "shop.slo.rules.yml",
                                  shop_alerts / "shop.slo-hourly.rules.yml",
                                  shop_alerts / "shop.slo-report.rules.yml"])
    assert check.ok, check.output
    result = promtool.test_rules([shop_alerts / "tests" / "shop.slo.test.yml",
                                  shop_alerts / "tests" / "shop.slo-report.test.yml"])
    assert result.ok, result.output


@pytest.mark.slow
@needs_promtool
def test_time_scaled_slo_divides_every_window_keeps_factors_and_its_tests_pass(tmp_path):
    """time_scale 60 on a 12h window: the 30d table at one minute per hour (page-1h looks
    back 1m and 5s at 14.4x, from a 5s raw rate); the generated promtool scenarios, run at
    that pace, still pass, and a tier's own `for` is kept as written."""
    fast = {"window": "12h", "time_scale": 60}
    document = spec({**AVAILABILITY, **fast, "alerting": {"tiers": {"page-6h": {"for": "3s"}}}},
                    {**EXAMPLE, **fast},
                    defaults={"prometheus": {"evaluation_interval": "1s"}})
    alerts = generate_alerts(write_spec(tmp_path, document), tmp_path)
    groups = [g for name in ("shop.slo.rules.yml", "shop.slo-hourly.rules.yml",
                             "shop.slo-report.rules.yml")
              for g in yaml.safe_load((alerts / name).read_text())["groups"]]
    rules = [r for g in groups for r in g["rules"]]
    records = {r["record"] for r in rules if "record" in r}
    assert {"slo:events:rate5s", "slo:sli_error:ratio_rate1m",
            "slo:sli_error:ratio_rate1h12m", "slo:sli_error:ratio_rate12h"} <= records
    assert not {r for r in records if r.endswith(("rate5m", "rate1h", "rate3d"))}
    # the hourly means (of a minute here) every 5s, and the 12h ratio reads them
    assert [(g["name"], g.get("interval")) for g in groups] == [
        ("shop-slo", None), ("shop-slo-hourly", "5s"), ("shop-slo-report", None)]
    assert {r["record"] for r in groups[1]["rules"]} == {"slo:bad_events:rate1m",
                                                         "slo:events:rate1m"}
    window = next(r for r in rules if r.get("record") == "slo:sli_error:ratio_rate12h")
    assert "slo:events:rate1m{" in window["expr"] and "[12h]" in window["expr"]
    page = next(r for r in rules if r.get("labels", {}).get("burn_tier") == "page-1h")
    assert "ratio_rate1m{" in page["expr"] and "ratio_rate5s{" in page["expr"]
    assert "(14.4 * 0.001)" in page["expr"] and page["for"] == "2s"
    assert {r["for"] for r in rules if r.get("labels", {}).get("burn_tier") == "page-6h"} \
        == {"3s", "5s"}
    tests = yaml.safe_load((alerts / "tests" / "shop.slo.test.yml").read_text())
    assert tests["evaluation_interval"] == "15s" and tests["tests"][0]["interval"] == "1s"
    result = promtool.test_rules([alerts / "tests" / "shop.slo.test.yml",
                                  alerts / "tests" / "shop.slo-report.test.yml"])
    assert result.ok, result.output


@needs_promtool
def test_hand_written_outage_fires_the_tiers_the_table_says(tmp_path):
    alerts = generate_alerts(HERE / "scenarios" / "slo_shop.yaml", tmp_path)
    shutil.copy(HERE / "scenarios" / "slo_incident.test.yml", alerts / "tests")
    result = promtool.test_rules([alerts / "tests" / "slo_incident.test.yml"])
    assert result.ok, result.output


def _mutate(alerts: Path, tmp_path: Path, mutation) -> promtool.Result:
    """Run the generated SLO tests against a deliberately broken copy of the SLO rules."""
    copy = tmp_path / "alerts"
    shutil.copytree(alerts, copy)
    rules = copy / "shop.slo.rules.yml"
    document = yaml.safe_load(rules.read_text())
    for rule in document["groups"][0]["rules"]:
        if "alert" in rule:
            mutation(rule)
    rules.write_text(yaml.safe_dump(document, sort_keys=False))
    return promtool.test_rules([copy / "tests" / "shop.slo.test.yml"])


@pytest.mark.slow
@needs_promtool
@pytest.mark.parametrize("name, mutation", [
    ("page-1h factor 7.2 instead of 14.4", lambda rule: rule.update(expr=rule["expr"].replace(
        "(14.4 *", "(7.2 *")) if rule["labels"].get("burn_tier") == "page-1h" else None),
    ("ticket-3d factor 2 instead of 1", lambda rule: rule.update(expr=rule["expr"].replace(
        "(1 *", "(2 *")) if rule["labels"].get("burn_tier") == "ticket-3d" else None),
    ("page-1h and ticket-1d windows swapped", lambda rule: rule.update(expr=_swap(
        rule["expr"], {"ratio_rate1h": "ratio_rate1d", "ratio_rate5m": "ratio_rate2h",
                       "ratio_rate1d": "ratio_rate1h", "ratio_rate2h": "ratio_rate5m"}))),
    ("page-6h long window 1d instead of 6h", lambda rule: rule.update(expr=rule["expr"].replace(
        "ratio_rate6h", "ratio_rate1d")) if rule["labels"].get("burn_tier") == "page-6h"
        else None),
])
def test_generated_tests_catch_broken_rules(shop_alerts, tmp_path, name, mutation):
    result = _mutate(shop_alerts, tmp_path, mutation)
    assert not result.ok, f"the generated tests did not notice: {name}"


def test_8x_burn_is_checked_with_ticket_1d_firing_and_page_6h_not_yet(shop_alerts):
    """Worked out by hand: after 2h of no errors, an 8x burn's mean over the (not yet full)
    1d window passes 3x after 1.2h of burning (8 (t - 2h) / t > 3), its 6h window (full
    from t = 6h) passes 6x after 4.5h (8 (t - 2h) / 6h > 6). Between the two, ticket-1d
    fires and page-6h does not: some check of the 8x case must say so. (With 6h of
    history the two were 44 minutes apart, less than two margins; see
    slo.between_checks.)"""
    tests = yaml.safe_load((shop_alerts / "tests" / "shop.slo.test.yml").read_text())["tests"]
    group = next(g for g in tests if "8x burn" in g["name"])
    states = [{a["exp_labels"]["burn_tier"] for a in check["exp_alerts"]
               if a["exp_labels"]["slo"] == "availability"}
              for check in group["alert_rule_test"]]
    assert {"ticket-3d", "ticket-1d"} in states
    assert {"ticket-3d", "ticket-1d", "page-6h"} in states


@pytest.mark.slow
@needs_promtool
def test_generated_tests_catch_a_page_6h_firing_with_ticket_1d(shop_alerts, tmp_path):
    """page-6h at 5x instead of 6x fires in the 8x case about when ticket-1d does (no other
    burn tells 5x from 6x on the 6h window: 4x stays under both, 20x passes both long
    before its checks): only the check between ticket-1d and page-6h notices."""
    def mutation(rule: dict) -> None:
        if rule["labels"].get("burn_tier") == "page-6h":
            rule["expr"] = rule["expr"].replace("(6 *", "(5 *")
    result = _mutate(shop_alerts, tmp_path, mutation)
    assert not result.ok, "the generated tests did not notice page-6h at 5x"
    assert "8x burn" in result.output


@needs_promtool
@pytest.mark.parametrize("name, section, old, new", [
    ("remaining budget over twice the budget", "slo-report", "/ 0.001", "/ 0.002"),
    ("burn rate over 6h instead of 1h", "slo-report",
     'ratio_rate1h{service="shop",slo="availability"} /',
     'ratio_rate6h{service="shop",slo="availability"} /'),
    ("exhaustion over a 7d window", "slo-report", "* 2592000 /", "* 604800 /"),
    ("30d ratio from the 5m rates, not the hourly means", "slo-report",
     'slo:bad_events:rate1h{service="shop",slo="availability"}[30d]',
     'slo:bad_events:rate5m{service="shop",slo="availability"}[30d]'),
    ("hourly mean over 30m", "slo-hourly",
     'slo:bad_events:rate5m{service="shop",slo="availability"}[1h]',
     'slo:bad_events:rate5m{service="shop",slo="availability"}[30m]'),
])
def test_report_recordings_have_a_short_test_of_their_own(shop_alerts, tmp_path, name, section,
                                                          old, new):
    """The report recordings (read by dashboards, no alert) and the hourly means the 30d
    ratio reads are in files the alerts' tests do not list, and a test of a few steps of
    their own catches a broken one."""
    tests = shop_alerts / "tests"
    assert yaml.safe_load((tests / "shop.slo.test.yml").read_text())["rule_files"] == \
        ["../shop.slo.rules.yml"]
    report = yaml.safe_load((tests / "shop.slo-report.test.yml").read_text())
    assert report["rule_files"] == ["../shop.slo.rules.yml", "../shop.slo-hourly.rules.yml",
                                    "../shop.slo-report.rules.yml"]
    # without an order promtool evaluated the groups in any order, and the report then
    # read the burn rates of the step before in some runs
    assert report["group_eval_order"] == ["shop-slo", "shop-slo-hourly", "shop-slo-report"]
    copy = tmp_path / "alerts"
    shutil.copytree(shop_alerts, copy)
    rules = copy / f"shop.{section}.rules.yml"
    text = rules.read_text()
    assert old in text
    rules.write_text(text.replace(old, new))
    result = promtool.test_rules([copy / "tests" / "shop.slo-report.test.yml"])
    assert not result.ok, f"the report test did not notice: {name}"


def _swap(expr: str, pairs: dict[str, str]) -> str:
    return re.sub("|".join(map(re.escape, pairs)), lambda m: pairs[m[0]], expr)


@needs_promtool
def test_budget_recordings_stay_numbers_without_traffic_and_read_python_le(shop_alerts,
                                                                           tmp_path):
    """No traffic: remaining budget 1, burn 0, time to exhaustion capped at the window (no
    NaN); the latency SLO reads a bucket the Python client spells ``le="0.5"``... and a
    Prometheus 3 ``le="1.0"`` style spelling is matched for a 1s threshold."""
    test = {
        "rule_files": ["../shop.slo.rules.yml", "../shop.slo-hourly.rules.yml",
                       "../shop.slo-report.rules.yml"],
        "evaluation_interval": "1m",
        "tests": [{
            "name": "idle", "interval": "1m",
            "input_series": [
                {"series": 'http_request_duration_seconds_count{job="shop",code="200"}',
                 "values": "5x30"},
                {"series": 'http_request_duration_seconds_bucket{job="shop",le="0.5"}',
                 "values": "5x30"}],
            "promql_expr_test": [
                {"expr": f'{name}{{slo="latency"}}', "eval_time": "30m",
                 "exp_samples": [{"labels": f'{name}{{service="shop",slo="latency"}}',
                                  "value": value}]}
                for name, value in [("slo:error_budget_remaining:ratio", 1),
                                    ("slo:current_burn_rate:ratio", 0),
                                    ("slo:time_to_exhaustion:seconds", 2592000),
                                    ("slo:sli_error:ratio_rate30d", 0)]],
        }, {
            "name": "10% slow, bucket written as the Python client does", "interval": "1m",
            "input_series": [
                {"series": 'http_request_duration_seconds_count{job="shop",code="200"}',
                 "values": "0+100x30"},
                {"series": 'http_request_duration_seconds_bucket{job="shop",le="0.5"}',
                 "values": "0+90x30"}],
            "promql_expr_test": [
                {"expr": 'round(slo:sli_error:ratio_rate1h{slo="latency"}, 0.0001)',
                 "eval_time": "30m",
                 "exp_samples": [{"labels": '{service="shop",slo="latency"}', "value": 0.1}]}],
        }],
    }
    path = shop_alerts / "tests" / "idle.test.yml"
    path.write_text(yaml.safe_dump(test))
    try:
        result = promtool.test_rules([path])
    finally:
        path.unlink()
    assert result.ok, result.output


@needs_promtool
def test_one_second_threshold_matches_le_written_1_0(tmp_path):
    slo = {"name": "latency", "objective": "99%", "indicator": {"latency": "1s"}}
    alerts = generate_alerts(write_spec(tmp_path, spec(slo)), tmp_path)
    test = {
        "rule_files": ["../shop.slo.rules.yml"], "evaluation_interval": "1m",
        "tests": [{"name": f"le={le}", "interval": "1m", "input_series": [
            {"series": 'http_request_duration_seconds_count{job="shop"}', "values": "0+100x30"},
            {"series": f'http_request_duration_seconds_bucket{{job="shop",le="{le}"}}',
             "values": "0+80x30"}],
            "promql_expr_test": [{
                "expr": "round(slo:sli_error:ratio_rate5m, 0.0001)", "eval_time": "30m",
                "exp_samples": [{"labels": '{service="shop",slo="latency"}', "value": 0.2}]}],
        } for le in ("1", "1.0")],
    }
    path = alerts / "tests" / "le.test.yml"
    path.write_text(yaml.safe_dump(test))
    result = promtool.test_rules([path])
    assert result.ok, result.output


# --- Dashboards ------------------------------------------------------------------------------


def test_dashboards_show_each_slo_and_the_overview_has_an_slo_row(tmp_path):
    import json

    from watchkeeper.dashboards.build import dashboard_files

    document = spec(AVAILABILITY, EXAMPLE)
    document["services"][0]["grafana_url"] = "https://grafana.example.com"
    services = load_spec(write_spec(tmp_path, document))
    files = dashboard_files(services, "spec.yaml")
    panels = json.loads(files["dashboards/shop.json"])["panels"]
    slo_panels = {p["id"]: p for p in panels if 501 <= p["id"] < 600}
    assert len(slo_panels) == 8  # compliance, budget, burn, events for each of two SLOs
    burn = slo_panels[503]
    assert burn["title"] == "availability: burn rate"
    steps = burn["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [(s["color"], s["value"]) for s in steps] == \
        [("green", None), ("yellow", 1), ("red", 6)]  # slowest ticket and page factors
    compliance = slo_panels[505]["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert ("red", None) in [(s["color"], s["value"]) for s in compliance]
    assert {"color": "green", "value": 0.99} in compliance  # the latency objective
    overview = json.loads(files["dashboards/overview.json"])["panels"]
    row = [p["title"] for p in overview if p["type"] == "row"]
    assert row[-1] == "SLOs: error budget remaining"
    stats = [p for p in overview if p["type"] == "stat" and p["title"].startswith("shop ")]
    assert [p["title"] for p in stats] == ["shop availability", "shop latency"]
    # the page alert links to the burn-rate panel it is judged by
    rules = alert_files_text(services)
    assert "viewPanel=503" in rules and "viewPanel=507" in rules


def alert_files_text(services) -> str:
    from watchkeeper.generate import alert_files
    return alert_files(services, "spec.yaml")["alerts/shop.slo.rules.yml"]
