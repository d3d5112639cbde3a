"""The leak's sawtooth scenario: as short as the alert's ranges allow, and still biting.

The sawtooth (a count rising to 90% of critical and falling back, twice per window) is
checked at the first peak inside the first window and at peaks after it. Every range the
leak alert reads lies within its window, so once a check's window starts at or after the
first sample, each later tooth repeats it sample for sample; the scenario stops at the
first such check whose `for` and `keep_firing_for` also reach back no further (rule
tests ninth pass, docs/benchmarks.md).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from rule_helpers import generate_alerts
from watchkeeper import promtool
from watchkeeper.signals import common, leak
from watchkeeper.spec import SpecFile, resolve

EXAMPLE = Path(__file__).resolve().parents[2] / "spec" / "services.yaml"


def _service(window: str, for_: str, keep: str):
    spec = resolve(SpecFile.model_validate({
        "version": 1, "defaults": {"alertmanager": {"receivers": "none"},
                                   "keep_firing_for": keep},
        "services": [{"name": "svc", "selector": {"job": "svc"}, "language": "go",
                      "runtime": {"goroutines": {"warning": 5000, "critical": 10000, "leak": {
                          "window": window, "horizon": "4h", "for": for_}}}}]}))
    return spec.services[0]


def _values(notation: str) -> list[float]:
    """promtool's `a+bxN a+bxN ...` expanded."""
    values = []
    for part in notation.split():
        start, rest = part.split("+")
        rise, count = rest.split("x")
        values.extend(float(start) + float(rise) * i for i in range(int(count) + 1))
    return values


@pytest.mark.parametrize(("window", "for_", "keep"), [
    ("1h", "5m", "0s"), ("1h", "5m", "5m"), ("1h", "30m", "0s"), ("1h", "40m", "20m"),
    ("2h", "0s", "0s"), ("30m", "10m", "0s"), ("6h", "1h", "0s"),
    ("1h", "2h", "0s"),  # a `for` longer than four teeth: all five peaks, as before
])
def test_each_dropped_peak_would_see_what_the_last_check_saw(window, for_, keep):
    """Against the scenario as it was (five peaks, a series of 3 windows and a tooth):
    the checks kept are its first ones, and each peak no longer checked depends on the
    same samples, shifted by whole teeth, as the last check kept (its window, `for` and
    `keep_firing_for` all within the series from its first full window on)."""
    service = _service(window, for_, keep)
    [piece] = leak.build(service)
    [sawtooth] = [s for s in piece.scenarios if "sawtooth" in s.name]
    step = common.leak_test_step(service)
    [spec_leak] = [b.leak for b in service.budgets.values() if getattr(b, "leak", None)]
    period = max(2, round(spec_leak.window / 2 / step))
    full = math.ceil(spec_leak.window / step)
    before = [(full + k * period - 1) * step for k in range(5)]  # the five peaks checked
    kept = sorted({check.eval_time for check in sawtooth.alert_checks})
    assert kept == before[:len(kept)] and len(kept) >= 2
    values = _values(sawtooth.series[0].values)
    last = round(kept[-1] / step)
    assert last + 1 <= len(values) < last + 1 + period  # whole teeth up to the last check
    lookback = full + math.ceil((spec_leak.for_ + service.keep_firing_for) / step - 1e-9)
    assert len(kept) == 5 or last - lookback >= 0  # five peaks: nothing dropped
    tooth = values[:period]
    seen = values[last - lookback:last + 1]
    for dropped in before[len(kept):]:
        index = round(dropped / step)
        assert (index - last) % period == 0
        would_see = [tooth[i % period] for i in range(index - lookback, index + 1)]
        assert would_see == seen


@pytest.mark.slow
def test_the_shorter_sawtooth_still_catches_a_leak_rule_without_its_growth_condition(
        tmp_path, promtool_path):
    """Without the steady-growth condition the prediction alone fires on the sawtooth's
    peaks: its test fails."""
    alerts = generate_alerts(EXAMPLE, tmp_path)
    rules = alerts / "festivals-api.leak.rules.yml"
    text, count = re.subn(r"\n\s+and ignoring\(service\)\n\s+\(\n(?:.*\n)*?\s+\)\n", "\n",
                          rules.read_text(), count=1)
    assert count == 1
    rules.write_text(text)
    result = promtool.test_rules([alerts / "tests" / "festivals-api.leak.test.yml"])
    assert not result.ok
    assert "sawtooth" in result.output and "GoroutineLeak" in result.output
