"""Hand-written incidents (tests/generator/scenarios/*.test.yml) against generated rules.

Each incident is written from the budgets in its spec and a story (a traffic collapse, an
SMTP outage…), with the values worked out by hand in its comments: none of it comes from
the generator's own scenario synthesis, so a shared mistake cannot hide in both.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from rule_helpers import generate_alerts
from watchkeeper import promtool

SCENARIOS = Path(__file__).parent / "scenarios"
SHOP_INCIDENTS = ["throughput_drop", "slow_queries", "cpu_saturation", "jobs_smtp_outage",
                  "error_spike", "pool_exhaustion", "cache_cold", "memory_growth",
                  "gc_pauses", "targets_down", "query_latency", "goroutine_leak"]


@pytest.fixture(scope="module")
def shop_alerts(tmp_path_factory) -> Path:
    return generate_alerts(SCENARIOS / "shop.yaml", tmp_path_factory.mktemp("shop"))


@pytest.mark.parametrize("incident", SHOP_INCIDENTS)
def test_hand_written_incident(shop_alerts, incident, promtool_path):
    test_file = shop_alerts / "tests" / f"{incident}.test.yml"
    shutil.copy(SCENARIOS / f"{incident}.test.yml", test_file)
    result = promtool.test_rules([test_file])
    assert result.ok, result.output


def test_incident_fails_when_a_budget_is_edited(shop_alerts, promtool_path):
    """The incidents are not vacuous: a floor moved from 10/s to 3/s misses the collapse."""
    rules = shop_alerts / "shop.http.rules.yml"
    original = rules.read_text()
    try:
        rules.write_text(original.replace(
            'service:http_request_duration_seconds_count:rate5m{service="shop"} < 10\n',
            'service:http_request_duration_seconds_count:rate5m{service="shop"} < 3\n'))
        assert rules.read_text() != original
        test_file = shop_alerts / "tests" / "throughput_drop.test.yml"
        shutil.copy(SCENARIOS / "throughput_drop.test.yml", test_file)
        result = promtool.test_rules([test_file])
        assert not result.ok and "HttpThroughputLow" in result.output
    finally:
        rules.write_text(original)
