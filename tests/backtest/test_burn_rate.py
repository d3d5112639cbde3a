"""Alerts the generator may add later are replayed without knowing them: a hand-written
multiwindow burn-rate rule group (ranges over recorded series, a matcher on a dynamic label,
`for` and `keep_firing_for`) gives, at every minute, the firing alerts Prometheus' rule
manager gives on the same samples."""

from __future__ import annotations

from backtest.test_against_prometheus_rules import promtool_test
from watchkeeper.backtest import engine, report
from watchkeeper.backtest.client import Client
from watchkeeper.backtest.source import from_documents

BUDGET = "(14.4 * 0.001)"
RULES = {"groups": [{"name": "checkout-slo", "rules": [
    {"record": "slo:errors:rate5m", "labels": {"slo": "availability"},
     "expr": 'sum(rate(http_request_duration_seconds_count{job="checkout",code=~"5.."}[5m]))'},
    {"record": "slo:requests:rate5m", "labels": {"slo": "availability"},
     "expr": 'sum(rate(http_request_duration_seconds_count{job="checkout"}[5m]))'},
    {"record": "slo:error_ratio:rate1h",
     "expr": 'avg_over_time(slo:errors:rate5m{slo="availability"}[1h])\n/ '
             'avg_over_time(slo:requests:rate5m{slo="availability"}[1h])'},
    {"record": "slo:error_ratio:rate5m",
     "expr": 'slo:errors:rate5m{slo="availability"} / slo:requests:rate5m{slo="availability"}'},
    {"alert": "ErrorBudgetBurn", "for": "2m", "keep_firing_for": "3m",
     "labels": {"severity": "critical", "service": "checkout"},
     "expr": f'slo:error_ratio:rate1h{{slo="availability"}} > {BUDGET}\n'
             f'and slo:error_ratio:rate5m{{slo="availability"}} > {BUDGET}'},
    {"alert": "ErrorBudgetBurnSlow", "for": "10m",
     "labels": {"severity": "warning", "service": "checkout"},
     "expr": 'slo:error_ratio:rate1h{slo="availability"} > (1 * 0.001)'},
]}]}


def test_burn_rate_alerts_match_prometheus(prometheus, start, synthetic, tmp_path,
                                           promtool_path):
    rules = from_documents({"checkout": RULES})
    window = engine.Window.of(start + 600, start + 359 * 60, 60)
    plan = engine.plan(rules, window)
    episodes = engine.run(Client(prometheus), plan)
    document = report.document(episodes, window, len(plan.alerts))["episodes"]
    fast = [e for e in document if e["alert"] == "ErrorBudgetBurn"]
    slow = [e for e in document if e["alert"] == "ErrorBudgetBurnSlow"]
    assert len(fast) == 1 and len(slow) == 1, document
    # errors from minute 150 to 180: the fast burn pages within minutes ...
    assert start + 150 * 60 < fast[0]["start"] <= start + 155 * 60
    # ... the 1h window keeps the slow one firing long after the 5m window has recovered
    assert slow[0]["end"] > fast[0]["end"] + 30 * 60
    result = promtool_test(tmp_path, promtool_path, RULES, synthetic.input_series(), document,
                           start)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
