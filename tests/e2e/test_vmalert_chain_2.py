"""The second half of the vmalert chain's fault scenarios (scenarios.HALVES; the first half,
the healthy baseline and the rule evaluation check are in test_vmalert_chain.py): the same
stack (conftest.py's `vm_demo`), a copy of its own, so that pytest-xdist runs the two halves
side by side instead of one after the other (each is minutes of waiting on real time).
"""

from __future__ import annotations

import chain
import pytest
import scenarios


@pytest.mark.parametrize("name", scenarios.HALVES[1])
def test_vmalert_fault_pages_and_resolves(vm_demo, vm_watch, name: str) -> None:
    """The same scenarios as the Prometheus chain: same alerts, same inhibition."""
    outcome = chain.run_scenario(vm_watch, scenarios.EVERY_SIGNAL[name](vm_demo))
    chain.check(chain.VMALERT_RUN, outcome)
