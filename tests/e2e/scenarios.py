"""Every fault scenario of the demo, once, for every evaluator the e2e runs (Prometheus,
vmalert): one list keeps the two variants covering the same signals.

Each entry builds a :class:`chain.Scenario` for a running :class:`stack.DemoStack`. The order
is the order the tests run in (cheap, quickly-recovering faults first, restarts last).
"""

from __future__ import annotations

import json
from collections.abc import Callable

import servers
import stack
from chain import Scenario, fault

API, REDIS = "demo-api", "demo-redis"
# The demo's SLOs (examples/demo/spec.jsonnet, time_scale 60): their burn-rate pages.
AVAILABILITY_SLO, LATENCY_SLO = (API, "slo:availability"), (API, "slo:latency")


def latency(demo: stack.DemoStack) -> Scenario:
    """Every request slower than the latency SLO's 500ms: its burn-rate page comes too."""
    return fault(demo.app_url, "latency +800ms",
                 {(API, "latency", "critical"), (*LATENCY_SLO, "critical")},
                 {(API, "latency", "warning")}, latency_ms=800)


def errors(demo: stack.DemoStack) -> Scenario:
    """Half the requests fail: the availability SLO burns 100x its budget and pages too."""
    return fault(demo.app_url, "50% 5xx",
                 {(API, "errors", "critical"), (*AVAILABILITY_SLO, "critical")},
                 {(API, "errors", "warning")}, error_rate=0.5)


def cache(demo: stack.DemoStack) -> Scenario:
    """Every lookup misses: the hit ratio (three chained recordings deep) must page."""
    return fault(demo.app_url, "cache bypass", {(API, "cache", "critical")},
                 {(API, "cache", "warning")}, allowed={(API, "db_latency")}, cache_bypass=True)


def slow_queries(demo: stack.DemoStack) -> Scenario:
    return fault(demo.app_url, "slow queries +300ms", {(API, "db_latency", "critical")},
                 {(API, "db_latency", "warning")}, allowed={(API, "latency"), LATENCY_SLO},
                 slow_query_ms=300)


def pool(demo: stack.DemoStack) -> Scenario:
    """Every pool connection held: requests needing one time out, so errors and latency may
    page too; the pool alert must."""
    return fault(demo.app_url, "pool exhausted", {(API, "db_pool", "critical")},
                 {(API, "db_pool", "warning")},
                 allowed={(API, "latency"), (API, "errors"), (API, "db_latency"),
                          LATENCY_SLO, AVAILABILITY_SLO},
                 hold_connections=10)


def leaks(demo: stack.DemoStack) -> Scenario:
    """Threads and tasks leak slowly: the predict_linear alerts fire while the counts are
    still far below the static warning budgets (200 threads, 5000 tasks), which are not in
    the scenario's allowed set and so fail it if they fire first. Hundreds of leaked tasks
    and threads are that many more objects for every full garbage collection to walk, so the
    GC pause warning (p99 above 100 ms) may fire too on a loaded machine (seen once)."""
    return fault(demo.app_url, "thread + task leak",
                 {(API, "threads", "warning"), (API, "tasks", "warning")},
                 allowed={(API, "gc")}, timeout=150, leak_threads_per_s=1,
                 leak_tasks_per_s=20)


def throughput(demo: stack.DemoStack) -> Scenario:
    """Every API request turned away in front of the service: its request rate falls from
    ~21/s to the 1/s of Prometheus' own scrapes of /metrics, under the 2/s floor. With no API
    traffic the ratios and quantiles (errors, latency, cache hits) have no events to judge.
    (A partial drop, e.g. 95%, also pages, but the L1 cache's 10 s TTL then expires between
    the rarer lookups, and the cache hit ratio pages as an honest side effect.)"""
    return fault(demo.app_url, "all API traffic dropped", {(API, "throughput", "critical")},
                 {(API, "throughput", "warning")}, traffic_drop=1.0)


def job_failures(demo: stack.DemoStack) -> Scenario:
    return named(demo, "JobFailureRatioHigh", fault(
        demo.app_url, "50% of jobs fail", {(API, "jobs", "critical")}, {(API, "jobs", "warning")},
        job_failure_rate=0.5))


def job_duration(demo: stack.DemoStack) -> Scenario:
    """Every job takes 2 s longer: p99 past the 3 s page (the 1-5 s bucket interpolates to
    ~5 s); 50 workers keep up with 10 jobs/s, so the backlog stays empty."""
    return named(demo, "JobDurationP99High", fault(
        demo.app_url, "jobs +2s", {(API, "jobs", "critical")}, {(API, "jobs", "warning")},
        job_delay_ms=2000))


def job_backlog(demo: stack.DemoStack) -> Scenario:
    """Workers paused: the queue grows by 10 jobs/s past 100; nothing is processed, so the
    failure ratio and duration have no events to judge."""
    return named(demo, "JobBacklogHigh", fault(
        demo.app_url, "job workers paused", {(API, "jobs", "critical")},
        {(API, "jobs", "warning")}, jobs_paused=True))


def named(demo: stack.DemoStack, alert: str, scenario: Scenario) -> Scenario:
    """The `jobs` signal has three alerts, which (service, signal, severity) keys cannot tell
    apart: before the fault is removed, the `jobs` alerts firing must be ``alert`` only."""
    remove = scenario.remove

    def check_then_remove() -> None:
        firing = _firing_alertnames(demo, "jobs")
        remove()
        assert firing <= {alert}, f"{scenario.name}: expected {alert}, firing: {sorted(firing)}"

    scenario.remove = check_then_remove
    return scenario


def _firing_alertnames(demo: stack.DemoStack, signal: str) -> set[str]:
    status, body = servers.get(demo.evaluator.url + "/api/v1/alerts", timeout=5)
    assert status == 200, body
    return {a["labels"]["alertname"] for a in json.loads(body)["data"]["alerts"] or []
            if a["state"] == "firing" and a["labels"].get("signal") == signal}


def redis_down(demo: stack.DemoStack) -> Scenario:
    """Redis killed: pages once as demo-redis's ``absent``, not as cache-ratio noise."""
    def restart() -> None:
        demo.redis.start()
        stack.warm(demo.app_url)

    return Scenario("Redis down", demo.redis.kill, restart, {(REDIS, "absent", "critical")},
                    {(REDIS, "absent", "warning")})


def service_down(demo: stack.DemoStack) -> Scenario:
    """The demo service killed: its ``absent`` pages and silences everything else of it."""
    def restart() -> None:
        demo.app.start()
        stack.warm(demo.app_url)

    return Scenario("service down", demo.app.kill, restart, {(API, "absent", "critical")},
                    {(API, "absent", "warning")})


EVERY_SIGNAL: dict[str, Callable[[stack.DemoStack], Scenario]] = {
    "latency": latency, "errors": errors, "cache": cache, "slow_queries": slow_queries,
    "pool": pool, "leaks": leaks, "throughput": throughput, "job_failures": job_failures,
    "job_duration": job_duration, "job_backlog": job_backlog, "redis_down": redis_down,
    "service_down": service_down,
}
