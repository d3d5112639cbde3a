"""The promtool half of the SLO sweep (test_slo_sweep.py) with the 7d and 14d windows: a module
of its own so that pytest-xdist (`--dist loadfile`) runs the two halves on two workers."""

from __future__ import annotations

import pytest
from test_slo import needs_promtool
from test_slo_sweep import check_generated_slo_tests, sweep_half


@pytest.mark.slow
@needs_promtool
@pytest.mark.parametrize(("window", "objective", "fors"), sweep_half("short"))
def test_generated_slo_tests_pass_across_windows_and_objectives(tmp_path, window, objective,
                                                                 fors):
    check_generated_slo_tests(tmp_path, window, objective, fors)
