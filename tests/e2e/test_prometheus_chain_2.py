"""End to end, the second half of the Prometheus chain's fault scenarios (scenarios.HALVES;
the first half, the healthy baseline and the routing checks are in test_prometheus_chain.py):
the same stack (conftest.py's `demo`), a copy of its own, so that pytest-xdist runs the two
halves side by side instead of one after the other (each is minutes of waiting on real time).
"""

from __future__ import annotations

import chain
import pytest
import scenarios


@pytest.mark.parametrize("name", scenarios.HALVES[1])
def test_fault_pages_and_resolves(demo, watch, name: str) -> None:
    """One fault per signal: the right alert pages, its warning is inhibited, nothing else
    fires, everything resolves once the fault is removed."""
    outcome = chain.run_scenario(watch, scenarios.EVERY_SIGNAL[name](demo))
    chain.check(chain.PROMETHEUS_RUN, outcome)
