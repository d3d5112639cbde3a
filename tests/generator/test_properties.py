"""Property: for any valid spec, every generated rule and test file passes promtool."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rule_helpers import generate_alerts, run_promtool, write_spec

pytestmark = pytest.mark.slow  # 25 specs through promtool: minutes

DURATIONS_MS = st.sampled_from([5, 20, 50, 100, 250, 500, 1000, 2500])
WINDOWS = st.sampled_from(["1m", "2m", "5m", "10m"])
FORS = st.sampled_from(["0s", "30s", "1m", "5m", "10m"])


@st.composite
def ordered(draw, values, lower_is_worse=False, fmt=str):
    """A threshold block with one or two severities in the right order."""
    picked = sorted(draw(st.lists(values, min_size=1, max_size=2, unique=True)))
    if lower_is_worse:
        picked.reverse()
    block = {}
    if len(picked) == 2:
        block = {"warning": fmt(picked[0]), "critical": fmt(picked[1])}
    else:
        block = {draw(st.sampled_from(["warning", "critical"])): fmt(picked[0])}
    if draw(st.booleans()):
        block["for"] = draw(FORS)
    return block


def ms(value):
    return f"{value}ms"


def pct(value):
    return f"{value}%"


def per_second(value):
    return f"{value}/s"


@st.composite
def services(draw, index):
    language = draw(st.sampled_from(["go", "python"]))
    service = {"name": f"svc-{index}", "selector": {"job": f"svc-{index}"}, "language": language}
    if draw(st.booleans()):
        quantiles = draw(st.lists(st.sampled_from(["p50", "p90", "p99", "p999"]), min_size=1,
                                  max_size=2, unique=True))
        service["http"] = {
            "latency": {q: draw(ordered(DURATIONS_MS, fmt=ms)) for q in quantiles},
            "error_ratio": draw(ordered(st.sampled_from([0.1, 0.5, 1, 5]), fmt=pct)),
        }
    if draw(st.booleans()):
        service.setdefault("http", {})["throughput"] = draw(
            ordered(st.sampled_from([1, 10, 50, 600]), lower_is_worse=True, fmt=per_second))
    if draw(st.booleans()):
        service["database"] = {"latency": {"p99": draw(ordered(DURATIONS_MS, fmt=ms))},
                               "pool": {"utilization": draw(
                                   ordered(st.sampled_from([50, 80, 95]), fmt=pct))}}
        if draw(st.booleans()):
            service["database"]["slow_queries"] = {
                "threshold": draw(st.sampled_from(["100ms", "250ms", "1s"])),
                **draw(ordered(st.sampled_from([1, 5, 20]), fmt=per_second))}
    if draw(st.booleans()):
        service["jobs"] = [{"name": "emails",
                            "failure_ratio": draw(ordered(st.sampled_from([1, 5]), fmt=pct)),
                            "duration": {"p99": draw(ordered(DURATIONS_MS, fmt=ms))},
                            "backlog": draw(ordered(st.sampled_from([100, 1000]), fmt=int))}]
    if draw(st.booleans()):
        service["selector"] = {"job": {"regex": f"svc-{index}|svc-{index}-canary"},
                               "route": {"not_regex": "/metrics|/healthz"}}
    if draw(st.booleans()):
        service["caches"] = [{"name": "c1", "hit_ratio": draw(
            ordered(st.sampled_from([30, 60, 90]), lower_is_worse=True, fmt=pct))}]
    runtime = {"memory": draw(ordered(st.sampled_from([64, 512, 2048]),
                                      fmt=lambda v: f"{v}MiB"))}
    counts = st.sampled_from([100, 1000, 5000])
    key = "goroutines" if language == "go" else "tasks"
    runtime[key] = draw(ordered(counts, fmt=int))
    if "critical" in runtime[key] and draw(st.booleans()):
        runtime[key]["leak"] = {"window": draw(st.sampled_from(["10m", "30m", "1h"])),
                                "horizon": draw(st.sampled_from(["30m", "2h"]))}
    if draw(st.booleans()):
        runtime["gc_pause"] = draw(ordered(DURATIONS_MS, fmt=ms))
    if draw(st.booleans()):
        runtime["cpu"] = {**draw(ordered(st.sampled_from([50, 70, 90]), fmt=pct)),
                          **({"cores": 2} if draw(st.booleans()) else {})}
    service["runtime"] = runtime
    return service


@st.composite
def specs(draw):
    count = draw(st.integers(1, 2))
    return {
        "version": 1,
        "defaults": {"rate_window": draw(WINDOWS), "for": draw(FORS),
                     "min_events": draw(st.sampled_from([1, 10, 100])),
                     "alertmanager": {"receivers": "none"}},
        "services": [draw(services(i)) for i in range(count)],
    }


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(spec=specs())
def test_any_valid_spec_passes_promtool(tmp_path_factory, promtool_path, spec):
    folder = tmp_path_factory.mktemp("spec")
    alerts = generate_alerts(write_spec(folder, spec), folder)
    checked, tested = run_promtool(alerts)
    assert checked.ok, checked.output
    assert tested.ok, tested.output
