"""Predicted quantiles stay clear of the roundings promtool compares them after.

promtool checks a quantile as ``round(v, 1e-06)`` and its alert's annotation as
``humanizeDuration`` (4 significant digits). Go computes v through rates and
histogram_quantile, Python predicts it: the two agree to a few ulps only, so a prediction
sitting on a rounding tie (0.8999985) reads 0.899998 on one side and 0.899999 on the other.
The property test found such a spec; pairs of budgets that sat on ties run through promtool,
and a sweep shows no synthesised value sits near a tie.
"""

from __future__ import annotations

import itertools

from rule_helpers import generate_alerts, load_yaml, run_promtool, write_spec
from watchkeeper import units
from watchkeeper.rule_tests import promql_round
from watchkeeper.signals import common, threshold

# A few ulps, well above what Go's and Python's sums tell apart, far below a test value's
# distance to the next micro-unit tie.
WOBBLE = 1e-12


def steady(value: float) -> bool:
    """True when `value` reads the same after rounding and rendering a few ulps either side."""
    low, high = value * (1 - WOBBLE), value * (1 + WOBBLE)
    return (promql_round(low) == promql_round(high)
            and units.humanize_duration(low) == units.humanize_duration(high))


def test_found_spec_passes_promtool(tmp_path, promtool_path):
    """The property test's counterexample (at 10166f3): p50 0.9 s predicted 0.899998,
    promtool computed 0.899999, from bucket bounds 0.552857 and 1.24714."""
    spec = {"version": 1,
            "defaults": {"rate_window": "1m", "for": "0s", "min_events": 1},
            "services": [{"name": "svc-0", "selector": {"job": "svc-0"}, "language": "go",
                          "http": {"latency": {"p99": {"warning": "2500ms"},
                                               "p50": {"warning": "1000ms"}},
                                   "error_ratio": {"warning": "0.1%"}},
                          "runtime": {"memory": {"warning": "64MiB"},
                                      "goroutines": {"warning": 100}}}]}
    checked, tested = run_promtool(generate_alerts(write_spec(tmp_path, spec), tmp_path))
    assert checked.ok, checked.output
    assert tested.ok, tested.output


def latency_service(p50: str, p99: str) -> dict:
    name = f"svc-{p50}-{p99}"
    return {"name": name, "selector": {"job": name}, "language": "go",
            "http": {"latency": {"p50": {"warning": p50}, "p99": {"warning": p99}}},
            "runtime": {"memory": {"warning": "64MiB"}}}


def test_former_ties_pass_promtool(tmp_path, promtool_path):
    """Budget pairs whose p99 cases sat on a tie after the latency+errors joint synthesis
    (main 427e841): promtool read 0.769998 for a predicted 0.769999 (250/700 ms) and
    0.899999 for 0.9 (700/1000 ms)."""
    spec = {"version": 1, "services": [latency_service("250ms", "700ms"),
                                       latency_service("700ms", "1000ms")]}
    checked, tested = run_promtool(generate_alerts(write_spec(tmp_path, spec), tmp_path))
    assert checked.ok, checked.output
    assert tested.ok, tested.output


def test_bracket_midpoint_is_the_value():
    """The bounds' decimal midpoint is the wanted value: 0.9 between 0.552857 and 1.247143
    (not 1.24714, which put the midpoint on a tie)."""
    low, high = common.bracket(0.9, 0.9 * 1.35 / 3.15)
    assert (low, high) == (0.552857, 1.247143)
    assert common.bracket(0.15, 0.5) == (0.075, 0.225)


# Test values of budgets from 1 ms to 30 s as threshold.test_values makes them: 0.9x and
# 1.1x of a budget to 3 significant digits, off the prefix edges (1 s, 1 ms).
VALUES = sorted({threshold.clear_edge(float(f"{ms * k / 1000:.3g}"), threshold.DURATION, 1)
                 for ms in range(1, 30_000, 37) for k in (0.9, 1.1)})


def test_no_test_value_on_a_prefix_edge(tmp_path):
    """p99 budget 909 ms: 1.1x is 1 s, which Go may compute an ulp under ("1000ms")."""
    spec = {"version": 1, "services": [{
        "name": "svc", "selector": {"job": "svc"}, "language": "go",
        "http": {"latency": {"p99": {"warning": "909ms"}}},
        "runtime": {"memory": {"warning": "64MiB"}}}]}
    alerts = generate_alerts(write_spec(tmp_path, spec), tmp_path)
    values = {sample["value"] for path in (alerts / "tests").glob("*.test.yml")
              for test in load_yaml(path)["tests"] for check in test.get("promql_expr_test", [])
              if "p99" in check["expr"] for sample in check["exp_samples"]}
    assert 1.001 in values and 1.0 not in values


def test_two_quantiles_never_predict_a_tie():
    """Every pair of test values as p50 and p99 of one histogram (about 5% of them put a
    prediction on a micro-unit tie before the fix)."""
    unsteady = []
    for (a, b), per_step in itertools.product(itertools.combinations(VALUES[::5], 2),
                                              (1000.0, 0.125)):
        _, exact = common.quantiles_synthesis("h", {}, [(0.5, a), (0.99, b)], per_step, 3)
        for wanted, got in zip((a, b), exact, strict=True):
            if abs(got - wanted) > 1e-9 * wanted or not steady(got):
                unsteady.append((a, b, per_step, wanted, got))
    assert unsteady == []


def test_three_quantiles_never_predict_a_tie():
    unsteady = []
    for values in itertools.combinations(VALUES[::23], 3):
        _, exact = common.quantiles_synthesis("h", {}, list(zip((0.5, 0.9, 0.999), values,
                                                                strict=True)), 1000.0, 3)
        unsteady += [(values, got) for wanted, got in zip(values, exact, strict=True)
                     if abs(got - wanted) > 1e-9 * wanted or not steady(got)]
    assert unsteady == []


def test_one_quantile_never_predicts_a_tie():
    unsteady = []
    for value, q in itertools.product(VALUES, (0.5, 0.9, 0.99, 0.999)):
        got = common.histogram_synthesis("h", {}, q, value, 1000.0, 3, {}).value
        if abs(got - value) > 1e-9 * value or not steady(got):
            unsteady.append((value, q, got))
    assert unsteady == []
