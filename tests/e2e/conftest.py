"""The e2e chain's fixtures: the demo stack (examples/demo) under steady load, module-wide.

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

