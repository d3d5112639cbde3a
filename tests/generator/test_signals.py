"""Table-driven, promtool-free: for a minimal spec per signal, the exact rules generated.

Every expected rule below is written by hand from the signal's definition (docs/spec.md),
not captured from the generator, so a change to any expression, label or annotation shows
up here in seconds. promtool proves the rules behave (test_rules.py, scenarios/).
"""

from __future__ import annotations

import pytest
import yaml
from watchkeeper.rules import build_groups, rule_file
from watchkeeper.spec import SpecFile, resolve

SVC = {"name": "svc", "selector": {"job": "svc"}}
WARN = {"service": "svc", "severity": "warning"}
CRIT = {"service": "svc", "severity": "critical"}


def rules(language: str = "go", defaults: dict | None = None, **budgets) -> dict[str, list]:
    """{group name: rules} of one service with the given budgets."""
    spec = resolve(SpecFile.model_validate({
        "version": 1, "defaults": {"alertmanager": {"receivers": "none"}, **(defaults or {})},
        "services": [{**SVC, "language": language, **budgets}]}))
    document = yaml.safe_load(rule_file(build_groups(spec.services[0])))
    return {g["name"]: g["rules"] for g in document["groups"]}


def alert(rules_: list, name: str, severity: str) -> dict:
    [found] = [r for r in rules_ if r.get("alert") == name and r["labels"]["severity"] == severity]
    return found


def record(rules_: list, name: str) -> dict:
    [found] = [r for r in rules_ if r.get("record") == name]
    return found


# --- throughput -------------------------------------------------------------------------------


def test_throughput_floor_rules():
    group = rules(http={"throughput": {"warning": "50/s", "critical": "600/min"}})["svc-http"]
    assert group == [
        {"record": "service:http_request_duration_seconds_count:rate5m",
         "expr": 'sum(rate(http_request_duration_seconds_count{job="svc"}[5m]))',
         "labels": {"service": "svc"}},
        {"alert": "HttpThroughputLow",
         "expr": 'service:http_request_duration_seconds_count:rate5m{service="svc"} < 50\n'
                 'and on() count(up{job="svc"} offset 5m) > 0',
         "for": "5m", "labels": {**WARN, "signal": "throughput"},
         "annotations": {
             "summary": "HTTP request rate of svc is below its warning budget of 50/s",
             "description": "HTTP request rate of svc is {{ $value | humanize }}/s over the "
                            "last 5m; the warning budget is 50/s."}},
        {"alert": "HttpThroughputLow",
         "expr": 'service:http_request_duration_seconds_count:rate5m{service="svc"} < 10\n'
                 'and on() count(up{job="svc"} offset 5m) > 0',
         "for": "5m", "labels": {**CRIT, "signal": "throughput"},
         "annotations": {
             "summary": "HTTP request rate of svc is below its critical budget of 10/s",
             "description": "HTTP request rate of svc is {{ $value | humanize }}/s over the "
                            "last 5m; the critical budget is 10/s."}},
    ]


@pytest.mark.parametrize(("budget", "message"), [
    ({"warning": "10/s", "critical": "50/s"}, "lower is worse"),
    ({"warning": 50}, "expected a rate such as 50/s"),
    ({"warning": "50 rps"}, "expected a rate such as 50/s"),
])
def test_throughput_refuses_bad_floors(budget, message):
    with pytest.raises(ValueError, match=message):
        rules(http={"throughput": budget})


# --- slow queries -----------------------------------------------------------------------------


@pytest.mark.parametrize(("threshold", "le"), [("100ms", r"0\\.1"), ("1s", r"1|1\\.0"),
                                               ("2.5s", r"2\\.5")])
def test_slow_queries_count_above_the_bucket_in_both_spellings(threshold, le):
    group = rules(database={"slow_queries": {"threshold": threshold, "critical": "10/s"}})[
        "svc-database"]
    assert record(group, "service:db_query_duration_seconds:slow_rate5m")["expr"] == (
        'sum(rate(db_query_duration_seconds_count{job="svc"}[5m]))\n'
        f'- sum(rate(db_query_duration_seconds_bucket{{job="svc",le=~"{le}"}}[5m]))')
    assert alert(group, "DbSlowQueriesHigh", "critical")["expr"] == (
        'service:db_query_duration_seconds:slow_rate5m{service="svc"} > 10\n'
        'and on() count(up{job="svc"} offset 5m) > 0')
    missing = alert(group, "DbSlowQueryBucketMissing", "warning")
    assert missing["expr"] == (
        f'absent(db_query_duration_seconds_bucket{{job="svc",le=~"{le}"}})\n'
        'and on() count(db_query_duration_seconds_count{job="svc"}) > 0')
    assert missing["labels"] == {**WARN, "signal": "slow_queries"}


def test_slow_queries_rate_per_minute_and_description():
    group = rules(database={"slow_queries": {"threshold": "250ms", "warning": "60/min"}})[
        "svc-database"]
    warning = alert(group, "DbSlowQueriesHigh", "warning")
    assert warning["expr"].startswith('service:db_query_duration_seconds:slow_rate5m'
                                      '{service="svc"} > 1\n')
    assert warning["annotations"]["summary"] == (
        "rate of database queries slower than 250ms of svc is above its warning budget of 1/s")


# --- cpu --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("language", "cores", "available"), [
    ("go", None, 'go_sched_gomaxprocs_threads{job="svc"}'),
    ("python", None, 'python_cpu_available_cores{job="svc"}'),
    ("go", 2, "2"),
    ("python", 0.5, "0.5"),
])
def test_cpu_is_used_over_available(language, cores, available):
    budget = {"warning": "70%", "critical": "90%", **({"cores": cores} if cores else {})}
    group = rules(language, runtime={"cpu": budget})["svc-runtime"]
    assert record(group, "instance:process_cpu_seconds_total:utilization_rate5m") == {
        "record": "instance:process_cpu_seconds_total:utilization_rate5m",
        "expr": f'rate(process_cpu_seconds_total{{job="svc"}}[5m])\n/\n{available}',
        "labels": {"service": "svc"}}
    critical = alert(group, "CpuUtilizationHigh", "critical")
    assert critical["expr"] == (
        'instance:process_cpu_seconds_total:utilization_rate5m{service="svc"} > 0.9\n'
        'and on() count(up{job="svc"} offset 5m) > 0')
    assert critical["annotations"]["summary"] == (
        "CPU utilisation of svc on {{ $labels.instance }} is above its critical budget of 90%")


def test_cpu_gauge_is_watched_by_service_metrics_absent_unless_cores_are_stated():
    watched = [r["labels"]["metric"]
               for r in rules(runtime={"cpu": {"critical": "90%"}})["svc-availability"]
               if r.get("alert") == "ServiceMetricsAbsent"]
    assert watched == ["process_cpu_seconds_total", "go_sched_gomaxprocs_threads"]
    watched = [r["labels"]["metric"]
               for r in rules(runtime={"cpu": {"critical": "90%", "cores": 4}})[
                   "svc-availability"] if r.get("alert") == "ServiceMetricsAbsent"]
    assert watched == ["process_cpu_seconds_total"]


# --- jobs -------------------------------------------------------------------------------------

JOB = {"name": "emails", "failure_ratio": {"warning": "1%", "critical": "5%"},
       "duration": {"p99": {"warning": "30s", "critical": "2m"}},
       "backlog": {"warning": 1000, "critical": 10000}}


def test_job_recordings_per_job_name():
    group = rules(jobs=[JOB])["svc-jobs"]
    assert [(r["record"], r["expr"]) for r in group if "record" in r] == [
        ("service_job:jobs_processed_total:rate5m",
         'sum by (job_name) (rate(jobs_processed_total{job="svc"}[5m]))'),
        ("service_job:jobs_processed_total:failure_ratio_rate5m",
         'sum by (job_name) (rate(jobs_processed_total{job="svc",result="error"}[5m]))\n/\n'
         'sum by (job_name) (rate(jobs_processed_total{job="svc"}[5m]))'),
        ("service_job:job_duration_seconds_count:rate5m",
         'sum by (job_name) (rate(job_duration_seconds_count{job="svc"}[5m]))'),
        ("service_job_le:job_duration_seconds_bucket:rate5m",
         'sum by (le, job_name) (rate(job_duration_seconds_bucket{job="svc"}[5m]))'),
        ("service_job:job_duration_seconds:p99_rate5m",
         'histogram_quantile(0.99, service_job_le:job_duration_seconds_bucket:rate5m'
         '{service="svc"})'),
        ("service_job:job_queue_depth:max", 'max by (job_name) (job_queue_depth{job="svc"})'),
    ]


def test_job_alerts_carry_the_job_name_and_their_guards():
    group = rules(jobs=[JOB])["svc-jobs"]
    failure = alert(group, "JobFailureRatioHigh", "warning")
    assert failure["expr"] == (
        'service_job:jobs_processed_total:failure_ratio_rate5m{service="svc",job_name="emails"}'
        ' > 0.01\nand on(service, job_name) service_job:jobs_processed_total:rate5m'
        '{service="svc",job_name="emails"} * 300 >= 10')
    assert failure["labels"] == {**WARN, "signal": "jobs", "job_name": "emails"}
    duration = alert(group, "JobDurationP99High", "critical")
    assert duration["expr"] == (
        'service_job:job_duration_seconds:p99_rate5m{service="svc",job_name="emails"} > 120\n'
        'and on(service, job_name) service_job:job_duration_seconds_count:rate5m'
        '{service="svc",job_name="emails"} * 300 >= 500')
    assert duration["annotations"]["summary"] == (
        "p99 duration of job {{ $labels.job_name }} in svc is above its critical budget of "
        "2m 0s")
    backlog = alert(group, "JobBacklogHigh", "critical")
    assert backlog["expr"] == (
        'service_job:job_queue_depth:max{service="svc",job_name="emails"} > 10000')
    assert "for" in backlog and backlog["labels"]["job_name"] == "emails"


@pytest.mark.parametrize(("jobs", "message"), [
    ([{"name": "a"}], "set at least one of"),
    ([{"name": "a", "backlog": {"critical": 5}}] * 2, "job names must be unique"),
    ([{"name": f"j{i}", "backlog": {"critical": 5}} for i in range(10)], "at most 9 jobs"),
    ([{"name": "a", "backlog": {"critical": "5"}}], "positive whole number"),
])
def test_jobs_refuse_bad_input(jobs, message):
    with pytest.raises(ValueError, match=message):
        rules(jobs=jobs)


# --- existing signals -------------------------------------------------------------------------


@pytest.mark.parametrize(("quantile", "events"), [("p50", 10), ("p90", 50), ("p95", 100),
                                                  ("p99", 500), ("p999", 5000)])
def test_latency_guard_grows_with_the_quantile(quantile, events):
    group = rules(http={"latency": {quantile: {"critical": "1s"}}})["svc-http"]
    assert alert(group, f"HttpLatency{quantile.upper()}High", "critical")["expr"] == (
        f'service:http_request_duration_seconds:{quantile}_rate5m{{service="svc"}} > 1\n'
        'and on(service) service:http_request_duration_seconds_count:rate5m{service="svc"}'
        f' * 300 >= {events}')


def test_min_events_set_in_the_spec_applies_to_every_quantile_and_ratio():
    group = rules(defaults={"min_events": 20},
                  http={"latency": {"p999": {"critical": "1s"}},
                        "error_ratio": {"critical": "1%"}})["svc-http"]
    guards = {r["alert"]: r["expr"].rsplit(">= ", 1)[1] for r in group if "alert" in r}
    assert guards == {"HttpLatencyP999High": "20", "HttpErrorRatioHigh": "20"}


def test_error_ratio_rules():
    group = rules(http={"error_ratio": {"critical": "1%"}})["svc-http"]
    assert record(group, "service:http_request_duration_seconds_count:error_ratio_rate5m")[
        "expr"] == ('sum(rate(http_request_duration_seconds_count{job="svc",code=~"5.."}[5m]))'
                    '\n/\nsum(rate(http_request_duration_seconds_count{job="svc"}[5m]))')
    assert alert(group, "HttpErrorRatioHigh", "critical")["expr"] == (
        'service:http_request_duration_seconds_count:error_ratio_rate5m{service="svc"} > 0.01\n'
        'and on(service) service:http_request_duration_seconds_count:rate5m{service="svc"}'
        ' * 300 >= 10')


@pytest.mark.parametrize(("language", "expr"), [
    ("go", 'go_sql_in_use_connections{job="svc"}\n/\n(go_sql_max_open_connections{job="svc"} > 0)'),
    ("python", 'db_client_connection_count{job="svc",state="used"}\n/ ignoring(state)\n'
               '(db_client_connection_max{job="svc"} > 0)'),
])
def test_pool_utilization_by_language(language, expr):
    group = rules(language, database={"pool": {"utilization": {"critical": "90%"}}})[
        "svc-database"]
    assert record(group, "instance_pool:db_client_connections:utilization")["expr"] == expr
    assert alert(group, "DbPoolUtilizationHigh", "critical")["expr"] == (
        'instance_pool:db_client_connections:utilization{service="svc"} > 0.9')


def test_unlimited_pool_is_reported_not_silent():
    group = rules(database={"pool": {"utilization": {"critical": "90%"}}})["svc-database"]
    unlimited = alert(group, "DbPoolUnlimited", "warning")
    assert unlimited["expr"] == 'go_sql_max_open_connections{job="svc"} == 0'
    assert unlimited["labels"] == {**WARN, "signal": "db_pool"}
    watched = [r["labels"]["metric"] for r in rules(
        database={"pool": {"utilization": {"critical": "90%"}}},
        runtime={"gc_pause": {"critical": "10ms"}})["svc-availability"]
        if r.get("alert") == "ServiceMetricsAbsent"]
    assert watched == ["go_sql_in_use_connections", "go_sql_max_open_connections",
                       "go_gc_duration_seconds_count"]


def test_cache_hit_ratio_rules():
    group = rules(caches=[{"name": "l1", "hit_ratio": {"critical": "50%"}}])["svc-cache"]
    assert record(group, "service_cache:cache_hit_ratio:rate5m")["expr"] == (
        '(service_cache:cache_hits:rate5m{service="svc"} or 0 * '
        'service_cache:cache_misses:rate5m{service="svc"})\n/\n'
        'service_cache:cache_lookups:rate5m{service="svc"}')
    low = alert(group, "CacheHitRatioLow", "critical")
    assert low["expr"] == (
        'service_cache:cache_hit_ratio:rate5m{service="svc",cache="l1"} < 0.5\n'
        'and on(service, cache) service_cache:cache_lookups:rate5m{service="svc",cache="l1"}'
        ' * 300 >= 10')
    assert low["labels"] == {**CRIT, "signal": "cache", "cache": "l1"}


@pytest.mark.parametrize(("language", "record_name", "expr"), [
    ("go", "instance:go_gc_duration_seconds:mean_rate5m",
     'rate(go_gc_duration_seconds_sum{job="svc"}[5m])\n/\n'
     'rate(go_gc_duration_seconds_count{job="svc"}[5m])'),
    ("python", "instance:python_gc_pause_seconds:p99_rate5m",
     'histogram_quantile(0.99, instance_le:python_gc_pause_seconds_bucket:rate5m'
     '{service="svc"})'),
])
def test_gc_pause_by_language(language, record_name, expr):
    group = rules(language, runtime={"gc_pause": {"critical": "100ms"}})["svc-runtime"]
    assert record(group, record_name)["expr"] == expr
    assert alert(group, "GcPauseHigh", "critical")["expr"] == (
        f'{record_name}{{service="svc"}} > 0.1')


def test_memory_and_leak_rules():
    group = rules(runtime={"memory": {"critical": "1GiB"},
                           "goroutines": {"critical": 100, "leak": {"window": "1h",
                                                                    "horizon": "4h"}}})
    assert alert(group["svc-runtime"], "MemoryHigh", "critical")["expr"] == (
        'process_resident_memory_bytes{job="svc"} > 1073741824')
    group = group["svc-leak"]  # leaks have a group of their own (tested at a coarser step)
    assert record(group, "instance:go_goroutines:predict_linear1h_4h")["expr"] == (
        'predict_linear(go_goroutines{job="svc"}[1h], 14400)')
    leak = alert(group, "GoroutineLeak", "warning")
    assert leak["expr"].startswith(
        'instance:go_goroutines:predict_linear1h_4h{service="svc"} > 100\n'
        'and ignoring(service)\n(\n  min_over_time(go_goroutines{job="svc"}[15m])\n')


def test_unitless_memory_is_refused():
    with pytest.raises(ValueError, match="a size needs its unit"):
        rules(runtime={"memory": {"warning": 512}})


def test_links_are_added_in_one_pass_and_point_at_the_explaining_panel():
    group = rules(defaults={"grafana_url": "https://g/", "runbook_url": "https://rb/{alert}"},
                  caches=[{"name": "a", "hit_ratio": {"critical": "50%"}},
                          {"name": "b", "hit_ratio": {"critical": "50%"}}])["svc-cache"]
    links = [(r["labels"]["cache"], r["annotations"]["dashboard_url"],
              r["annotations"]["runbook_url"]) for r in group if "alert" in r]
    assert links == [("a", "https://g/d/wk-svc/svc?viewPanel=301", "https://rb/CacheHitRatioLow"),
                     ("b", "https://g/d/wk-svc/svc?viewPanel=303", "https://rb/CacheHitRatioLow")]


def test_availability_rules():
    group = rules(runtime={"memory": {"critical": "1GiB"}})["svc-availability"]
    assert [(r["alert"], r["expr"], r["labels"]["severity"]) for r in group] == [
        ("ServiceDown", 'absent(up{job="svc"} == 1)', "critical"),
        ("TargetDown", 'up{job="svc"} == 0', "warning"),
        ("ServiceMetricsAbsent", 'absent(process_resident_memory_bytes{job="svc"})\n'
                                 'and on() count(up{job="svc"} == 1) > 0', "warning"),
    ]
    assert group[2]["labels"] == {**WARN, "signal": "absent",
                                  "metric": "process_resident_memory_bytes"}
