"""The e2e chain's fixtures: the demo stack (examples/demo) under steady load, module-wide:
each module using them gets a stack of its own (a chain's scenarios are split over two
modules, see scenarios.HALVES, which pytest-xdist runs side by side).

The detection-time table of every scenario run is printed at the end of the session and, when
``WK_E2E_REPORT`` names a file, written there as Markdown (docs/benchmarks-e2e.md is made so):
tests/conftest.py does that, as it also runs in pytest-xdist's controller.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
DEMO = HERE.parents[1] / "examples" / "demo"
for path in (HERE, DEMO):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import chain  # noqa: E402
import loadgen  # noqa: E402
import stack  # noqa: E402
from chain import require  # noqa: E402


@pytest.fixture(scope="module")
def demo() -> Iterator[stack.DemoStack]:
    """Prometheus 2.x + Alertmanager over the demo service."""
    require("prometheus", "prometheus-alertmanager", "redis-server")
    with stack.demo_stack() as running, loadgen.background(running.app_url, rps=20,
                                                           duration=1200):
        yield running


@pytest.fixture(scope="module")
def watch(demo: stack.DemoStack) -> chain.Chain:
    watching = chain.Chain(demo.evaluator.url, demo.alertmanager.url, demo.webhook)
    watching.wait_scraped(stack.READY_QUERIES)
    return watching


@pytest.fixture(scope="module")
def vm_demo() -> Iterator[stack.DemoStack]:
    """vmagent + VictoriaMetrics + vmalert + Alertmanager over the demo service."""
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


@pytest.fixture(autouse=True)
def _report_outcomes(request: pytest.FixtureRequest) -> Iterator[None]:
    """Hands every scenario the test checked to its report: under pytest-xdist (`make test`)
    the test runs in a worker, whose module globals the controller printing the table (see
    tests/conftest.py) never sees, while reports and their user properties reach it."""
    yield
    while chain.CHECKED:
        run, outcome = chain.CHECKED.pop(0)
        request.node.user_properties.append(("e2e_outcome",
                                             [run, chain.outcome_to_json(outcome)]))

