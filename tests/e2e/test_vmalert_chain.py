"""The same generated rule files, unchanged, on VictoriaMetrics: vmagent scrapes, VictoriaMetrics
stores, vmalert evaluates (recording rules written back through remote write) and notifies the
same Alertmanager configuration and webhook.

Runs the healthy baseline and two fault scenarios, about 2.5 minutes.
"""

from __future__ import annotations

from collections.abc import Iterator

import chain
import loadgen
import pytest
import stack
from chain import fault, require

API = "demo-api"
RUN = "VictoriaMetrics 1.79: vmagent + vmalert + Alertmanager"


@pytest.fixture(scope="module")
def vm_demo() -> Iterator[stack.DemoStack]:
    require("victoria-metrics", "vmagent", "vmalert", "prometheus-alertmanager", "redis-server")
    with stack.vm_stack() as running, loadgen.background(running.app_url, rps=20,
                                                         duration=600):
        yield running


@pytest.fixture(scope="module")
def vm_watch(vm_demo: stack.DemoStack) -> chain.Chain:
    watching = chain.Chain(vm_demo.evaluator.url, vm_demo.alertmanager.url, vm_demo.webhook,
                           vm_demo.query_url)
    watching.wait_scraped(stack.READY_QUERIES)
    return watching


def check(outcome: chain.Outcome) -> None:
    chain.check(RUN, outcome)


def test_vmalert_healthy_baseline_fires_nothing(vm_watch: chain.Chain) -> None:
    vm_watch.wait_quiet(timeout=60)
    check(chain.observe_healthy(vm_watch, seconds=20))


def test_vmalert_latency_pages_and_inhibits_its_warning(vm_demo, vm_watch) -> None:
    check(chain.run_scenario(vm_watch, fault(
        vm_demo.app_url, "latency +800ms", {(API, "latency", "critical")},
        {(API, "latency", "warning")}, latency_ms=800)))


def test_vmalert_error_ratio_pages(vm_demo, vm_watch) -> None:
    check(chain.run_scenario(vm_watch, fault(
        vm_demo.app_url, "50% 5xx", {(API, "errors", "critical")}, {(API, "errors", "warning")},
        error_rate=0.5)))
