"""End to end: demo service → exporters → Prometheus (generated rules) → Alertmanager
(generated routing) → webhook, with injected faults.

One stack serves every test of this module, in order; each scenario starts from a quiet chain,
injects one fault, checks what fires and what is notified, removes the fault and checks that
everything resolves. About 6 minutes on 2 cores.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import chain
import loadgen
import pytest
import stack
from chain import Scenario, fault, require

API, REDIS = "demo-api", "demo-redis"
RUN = "Prometheus 2.x + Alertmanager"


@pytest.fixture(scope="module")
def demo() -> Iterator[stack.DemoStack]:
    require("prometheus", "prometheus-alertmanager", "redis-server")
    with stack.demo_stack() as running, loadgen.background(running.app_url, rps=20,
                                                           duration=1200):
        yield running


@pytest.fixture(scope="module")
def watch(demo: stack.DemoStack) -> chain.Chain:
    watching = chain.Chain(demo.evaluator.url, demo.alertmanager.url, demo.webhook)
    watching.wait_scraped(stack.READY_QUERIES)
    return watching


def check(outcome: chain.Outcome) -> None:
    chain.check(RUN, outcome)


@pytest.mark.parametrize(("severity", "receiver"), [("critical", "page"), ("warning", "ticket")])
def test_routing_of_the_running_alertmanager(demo, severity: str, receiver: str) -> None:
    """The configuration the chain runs with passes amtool and routes by severity."""
    require("amtool")
    config = f"--config.file={demo.alertmanager_yml}"
    checked = subprocess.run(["amtool", "check-config", str(demo.alertmanager_yml)],
                             capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    routed = subprocess.run(["amtool", "config", "routes", "test", config, f"severity={severity}",
                             "service=demo-api", "signal=latency"],
                            capture_output=True, text=True, check=True)
    assert routed.stdout.split() == [receiver]


def test_healthy_baseline_fires_nothing(watch: chain.Chain) -> None:
    watch.wait_quiet(timeout=60)
    check(chain.observe_healthy(watch, seconds=25))


def test_latency_pages_and_inhibits_its_warning(demo, watch) -> None:
    check(chain.run_scenario(watch, fault(
        demo.app_url, "latency +800ms", {(API, "latency", "critical")},
        {(API, "latency", "warning")}, latency_ms=800)))


def test_error_ratio_pages(demo, watch) -> None:
    check(chain.run_scenario(watch, fault(
        demo.app_url, "50% 5xx", {(API, "errors", "critical")},
        {(API, "errors", "warning")}, error_rate=0.5)))


def test_cache_bypass_pages_for_hit_ratio(demo, watch) -> None:
    check(chain.run_scenario(watch, fault(
        demo.app_url, "cache bypass", {(API, "cache", "critical")},
        {(API, "cache", "warning")}, allowed={(API, "db_latency")}, cache_bypass=True)))


def test_slow_queries_page_for_db_latency(demo, watch) -> None:
    check(chain.run_scenario(watch, fault(
        demo.app_url, "slow queries +300ms", {(API, "db_latency", "critical")},
        {(API, "db_latency", "warning")}, allowed={(API, "latency")}, slow_query_ms=300)))


def test_pool_exhaustion_pages_for_db_pool(demo, watch) -> None:
    """Every pool connection held: requests needing one time out, so errors and latency may
    page too; the pool alert must."""
    check(chain.run_scenario(watch, fault(
        demo.app_url, "pool exhausted", {(API, "db_pool", "critical")},
        {(API, "db_pool", "warning")},
        allowed={(API, "latency"), (API, "errors"), (API, "db_latency")},
        hold_connections=10)))


def test_leaks_alert_before_static_thresholds(demo, watch) -> None:
    """Threads and tasks leak slowly: the predict_linear alerts fire while the counts are
    still far below the static warning budgets (200 threads, 5000 tasks), which are not in
    the scenario's allowed set and so fail it if they fire first."""
    check(chain.run_scenario(watch, fault(
        demo.app_url, "thread + task leak",
        {(API, "threads", "warning"), (API, "tasks", "warning")},
        timeout=150, leak_threads_per_s=1, leak_tasks_per_s=20)))


def test_redis_down_pages_once_not_as_cache_noise(demo, watch) -> None:
    def restart() -> None:
        demo.redis.start()
        stack.warm(demo.app_url)

    check(chain.run_scenario(watch, Scenario(
        "Redis down", demo.redis.kill, restart, {(REDIS, "absent", "critical")},
        {(REDIS, "absent", "warning")})))


def test_service_down_pages_absent_and_silences_the_rest(demo, watch) -> None:
    def restart() -> None:
        demo.app.start()
        stack.warm(demo.app_url)

    check(chain.run_scenario(watch, Scenario(
        "service down", demo.app.kill, restart, {(API, "absent", "critical")},
        {(API, "absent", "warning")})))
