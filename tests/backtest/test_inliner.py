"""Inlined recordings give exactly what the recorded series would have held.

Each expression below reads recorded series; Prometheus' rule manager (promtool's unit tests)
evaluates the recording rules over the synthetic history and then the expression; the same
expression with its recordings inlined is queried from the real Prometheus holding the raw
history only. The samples — labels and values — must be identical.
"""

from __future__ import annotations

import json
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml
from watchkeeper.backtest.promql import Inliner, PromQLError, split_comparison, tokenize
from watchkeeper.backtest.source import from_documents

RULES = {"groups": [{"name": "inline", "rules": [
    {"record": "job_code:requests:rate5m",
     "expr": "sum by (job, code) (rate(http_request_duration_seconds_count[5m]))",
     "labels": {"tier": "web"}},
    # The same record name defined twice (as two services' files would): a selector reads both.
    {"record": "job_code:requests:rate5m",
     "expr": "2 * sum by (job, code) (rate(http_request_duration_seconds_count[5m]))",
     "labels": {"tier": "double"}},
    {"record": "job:errors:ratio",
     "expr": 'sum by (job) (job_code:requests:rate5m{code=~"5..", tier="web"})\n/ '
             'sum by (job) (job_code:requests:rate5m{tier="web"})'},
    # A static label overriding a label of the series (job).
    {"record": "instance:memory:mib",
     "expr": "process_resident_memory_bytes / 1048576",
     "labels": {"job": "renamed", "unit": "mib"}},
    {"record": "instance:memory:mib_max10m",
     "expr": "max_over_time(instance:memory:mib[10m])"},
]}]}

EXPRESSIONS = [
    "job_code:requests:rate5m",
    'job_code:requests:rate5m{tier="web"}',
    'job_code:requests:rate5m{tier!="web", code="500"}',
    'job_code:requests:rate5m{code!~"2.."}',
    'job_code:requests:rate5m{code=~"2..|5..", tier=~"w.*"}',
    'job_code:requests:rate5m{code=""}',
    'job_code:requests:rate5m{code!=""}',
    'job_code:requests:rate5m{tier="none"}',
    "count by (__name__, tier) (job_code:requests:rate5m)",
    "job:errors:ratio > 0",
    'instance:memory:mib{job="renamed"}',
    'instance:memory:mib{job="checkout"}',
    'instance:memory:mib{instance="i2"} offset 30m',
    "max_over_time(instance:memory:mib[10m])",
    "instance:memory:mib_max10m",
    'instance:memory:mib_max10m{unit="mib"} - on(instance) group_left instance:memory:mib',
]
MINUTES = (65, 95, 152, 165, 201, 250, 310)


def instant(url: str, expr: str, moment: int) -> list[dict]:
    query = urllib.parse.urlencode({"query": expr, "time": moment})
    with urllib.request.urlopen(f"{url}/api/v1/query?{query}", timeout=30) as response:
        answer = json.load(response)
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def selector(metric: dict) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(metric.items())) + "}"


def test_inlined_recordings_equal_recorded_series(prometheus, start, synthetic, tmp_path,
                                                  promtool_path):
    inliner = Inliner(from_documents({"t": RULES}).recordings, step=60)
    cases, non_empty = [], 0
    for expr in EXPRESSIONS:
        inlined = inliner.inline(expr)
        assert not [t for t in tokenize(inlined) if t.kind == "ident" and ":" in t.text], \
            inlined
        for minute in MINUTES:
            samples = instant(prometheus, inlined, start + minute * 60)
            non_empty += bool(samples)
            cases.append({"expr": expr, "eval_time": f"{minute}m", "exp_samples": [
                {"labels": selector(s["metric"]), "value": float(s["value"][1])}
                for s in samples]})
    assert non_empty > len(cases) // 2
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(RULES))
    (tmp_path / "test.yml").write_text(yaml.safe_dump({
        "rule_files": ["rules.yml"], "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": synthetic.input_series(),
                   "promql_expr_test": cases}]}))
    result = subprocess.run([promtool_path, "test", "rules", str(tmp_path / "test.yml")],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_inliner_refuses_what_it_cannot_inline_exactly():
    inliner = Inliner(from_documents({"t": RULES}).recordings)
    with pytest.raises(PromQLError, match="__name__"):
        inliner.inline('{__name__=~"job_code:.*"}')
    with pytest.raises(PromQLError, match="@ modifier"):
        inliner.inline("instance:memory:mib @ 1700000000")
    loop = {"groups": [{"name": "g", "rules": [{"record": "a:b", "expr": "a:b + 1"}]}]}
    with pytest.raises(PromQLError, match="itself"):
        Inliner(from_documents({"t": loop}).recordings).inline("a:b")


def test_raw_selectors_are_kept_and_collected():
    inliner = Inliner({})
    expr = 'rate(x_total{job="a", code=~"5.."}[5m] offset 1h) / on(job) group_left y{job="a"}'
    assert inliner.inline(expr) == \
        'rate(x_total{job="a",code=~"5.."}[5m] offset 1h) / on (job) group_left y{job="a"}'
    assert sorted(inliner.raw) == ['x_total{job="a",code=~"5.."}[5m] offset 1h', 'y{job="a"}']


@pytest.mark.parametrize(("expr", "signal", "op", "budget"), [
    ('a{s="x"} > 0.05 and on(s) b * 300 >= 10', 'a{s="x"}', ">", 0.05),
    ("ratio < 80 / 100", "ratio", "<", 0.8),
    ("(slo:burn1h > 14.4 * (1 - 0.999) and slo:burn5m > 14.4 * (1 - 0.999)) or (x > 6)",
     "slo:burn1h", ">", 14.4 * (1 - 0.999)),
    ("(a + b) / c > 1", "(a + b) / c", ">", 1),
    ("absent(x) and on() count(up == 1) > 0", None, None, None),
    ("absent(up == 1)", None, None, None),
    ("rate(x[5m]) > bool 1", None, None, None),
    ("a > b", None, None, None),
])
def test_split_finds_the_signal_and_its_budget(expr, signal, op, budget):
    split = split_comparison(expr)
    if signal is None:
        assert split is None
    else:
        assert (split.signal, split.op) == (signal, op)
        assert split.budget == pytest.approx(budget)


@pytest.mark.parametrize(("expr", "expected"), [
    ('s{a="b"} > 0.05 and on(a) g * 300 >= 10', ('s{a="b"} and on(a) g * 300 >= 10', ">", 0.05)),
    ("rate(x[5m]) / rate(y[5m]) < 80 / 100", ("rate(x[5m]) / rate(y[5m])", "<", 0.8)),
    ("x > 1 unless y", ("x unless y", ">", 1)),
    ("x > 1 and y or z", None),          # `or` adds samples the budget does not filter
    ("(x > 1) and y", None),             # comparison inside parentheses: queried as written
    ("x > bool 1", None),
    ("x > y", None),
    ("1 < x", None),
    ("x and y > 1", None),
    ("absent(x)", None),
])
def test_factor_budget(expr, expected):
    from watchkeeper.backtest.promql import factor_budget

    assert factor_budget(expr) == expected


def test_warning_and_critical_share_a_query():
    from watchkeeper.backtest import engine, source

    spec = Path(__file__).resolve().parents[2] / "spec" / "services.yaml"
    plan = engine.plan(source.rule_set(str(spec)),
                       engine.Window.of(0, 3600, 60))
    # Static budgets (one alert per severity) share; SLO burn tiers differ in their windows.
    static = [rule for rule, _ in plan.alerts if "slo" not in dict(rule.labels)]
    static_queries = [q for q in plan.queries
                      if any("slo" not in dict(m.rule.labels) for m in q.members)]
    assert len(static_queries) < 0.7 * len(static)
    answered = [m.rule for q in plan.queries for m in q.members]
    assert len(answered) == len(plan.alerts)
    assert set(answered) == {rule for rule, _ in plan.alerts}
