"""Every fault scenario of the demo, once, for every evaluator the e2e runs (Prometheus,
vmalert): one list keeps the two variants covering the same signals.

Each entry builds a :class:`chain.Scenario` for a running :class:`stack.DemoStack`. The order
is the order the tests run in (cheap, quickly-recovering faults first, restarts last).
"""

from __future__ import annotations

from collections.abc import Callable

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
    "pool": pool, "leaks": leaks, "redis_down": redis_down, "service_down": service_down,
}
