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
import scenarios
import stack
from chain import require

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


@pytest.mark.parametrize("name", list(scenarios.EVERY_SIGNAL))
def test_fault_pages_and_resolves(demo, watch, name: str) -> None:
    """One fault per signal (tests/e2e/scenarios.py): the right alert pages, its warning is
    inhibited, nothing else fires, everything resolves once the fault is removed."""
    check(chain.run_scenario(watch, scenarios.EVERY_SIGNAL[name](demo)))
