"""The same generated rule files, unchanged, on VictoriaMetrics: vmagent scrapes, VictoriaMetrics
stores, vmalert evaluates (recording rules written back through remote write) and notifies the
same Alertmanager configuration and webhook.

Runs the healthy baseline and every fault scenario the Prometheus chain runs
(tests/e2e/scenarios.py), cache included, about 6 minutes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import chain
import loadgen
import pytest
import scenarios
import servers
import stack
from chain import require

RUN = "VictoriaMetrics 1.79: vmagent + vmalert + Alertmanager"


@pytest.fixture(scope="module")
def vm_demo() -> Iterator[stack.DemoStack]:
    require("victoria-metrics", "vmagent", "vmalert", "prometheus-alertmanager", "redis-server")
    with stack.vm_stack() as running, loadgen.background(running.app_url, rps=20,
                                                         duration=1200):
        yield running


@pytest.fixture(scope="module")
def vm_watch(vm_demo: stack.DemoStack) -> chain.Chain:
    watching = chain.Chain(vm_demo.evaluator.url, vm_demo.alertmanager.url, vm_demo.webhook,
                           vm_demo.query_url)
    watching.wait_scraped(stack.READY_QUERIES, timeout=90)
    return watching


def check(outcome: chain.Outcome) -> None:
    chain.check(RUN, outcome)


def test_vmalert_healthy_baseline_fires_nothing(vm_watch: chain.Chain) -> None:
    vm_watch.wait_quiet(timeout=60)
    check(chain.observe_healthy(vm_watch, seconds=20))


def test_vmalert_rules_evaluate_without_errors(vm_demo: stack.DemoStack,
                                               vm_watch: chain.Chain) -> None:
    """Every rule of the generated files loads and evaluates in vmalert (no lastError), and
    every recording whose expression answers when queried from VictoriaMetrics has its own
    series there too (the symptom once seen for the cache hit ratio)."""
    _, body = servers.get(vm_demo.evaluator.url + "/api/v1/rules", timeout=5)
    rules = [r for g in json.loads(body)["data"]["groups"] for r in g["rules"]]
    assert rules, "vmalert loaded no rules"
    assert not [(r["name"], r["lastError"]) for r in rules if r.get("lastError")]
    records = {r["name"]: r["query"] for r in rules if r.get("type") == "recording"}
    answering = {name for name, expr in records.items() if vm_watch.query(expr)}
    assert "service_cache:cache_hit_ratio:rate15s" in answering
    assert not _never_recorded(vm_watch, answering, timeout=45)


def _never_recorded(watch: chain.Chain, names: set[str], timeout: float) -> set[str]:
    """The recordings among ``names`` with no sample in VictoriaMetrics within ``timeout``.

    Some expressions answer only now and then (the GC pause p99 exists only while a pause
    falls inside its 15 s window), and VictoriaMetrics makes a new series queryable up to
    ~10 s after vmalert writes it, one such lag per chained level: so a recording whose
    expression answers this second is given until its next evaluations are indexed."""
    missing = set(names)
    deadline = time.monotonic() + timeout
    while missing and time.monotonic() < deadline:
        missing = {name for name in missing if not watch.query(f"last_over_time({name}[1m])")}
        if missing:
            time.sleep(2)
    return missing


@pytest.mark.parametrize("name", list(scenarios.EVERY_SIGNAL))
def test_vmalert_fault_pages_and_resolves(vm_demo, vm_watch, name: str) -> None:
    """The same scenarios as the Prometheus chain: same alerts, same inhibition."""
    check(chain.run_scenario(vm_watch, scenarios.EVERY_SIGNAL[name](vm_demo)))
