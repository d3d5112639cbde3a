"""Selectors with Prometheus' four operators, validated by RE2 as Prometheus reads them."""

from __future__ import annotations

import pytest
from watchkeeper import promql, selectors
from watchkeeper.model import Matcher


def test_mapping_form_with_every_operator():
    selector = selectors.parse({"job": {"regex": "rockstar|rockstar-canary"},
                                "route": {"not_regex": "/metrics|/healthz"},
                                "env": {"not": "staging"}, "team": "web"})
    assert promql.matchers(selector) == (
        '{job=~"rockstar|rockstar-canary",route!~"/metrics|/healthz",env!="staging",'
        'team="web"}')
    assert selector.equalities() == {"team": "web"}
    # test series carry a value each positive matcher accepts; excluded labels are left out
    assert selector.example == {"job": "rockstar", "team": "web"}


def test_promql_form_reads_quotes_and_escapes():
    selector = selectors.parse(r'{job=~"api-(canary|main)[0-9]*", path!="a\"b", x=' + "'y'}")
    assert selector.matchers == (Matcher("job", "=~", "api-(canary|main)[0-9]*"),
                                 Matcher("path", "!=", 'a"b'), Matcher("x", "=", "y"))
    assert selector.example == {"job": "api-canary", "x": "y"}


@pytest.mark.parametrize(("value", "message"), [
    ({"job": {"regex": "(?=x)a"}}, "invalid perl operator"),  # lookahead: Python has it
    ({"job": {"regex": r"(a)\1"}}, "invalid escape sequence"),  # backreference
    ({"job": {"regex": "a++"}}, "bad repetition operator"),  # possessive
    ({"job": {"regex": r"a\Z"}}, "invalid escape sequence"),  # Python's end anchor
    ({"job": {"regex": "a("}}, "missing \\)"),
    ({"route": {"not_regex": "/x"}}, "at least one that does not"),
    ({"job": {"regex": ".*"}}, "at least one that does not"),
    ({"job": {"regx": "a"}}, "expected a value, or one of"),
    ({"__name__": "x"}, "not a valid Prometheus label name"),
    ('{job=~"a" route="b"}', "cannot read PromQL matchers"),
    ("{}", "at least one matcher"),
    ({"job": {"regex": "a"}, "job2": {"regex": "[^a]"}}, "none could be derived"),
])
def test_bad_selectors_say_what_is_wrong(value, message):
    with pytest.raises(ValueError, match=message):
        selectors.parse(value)


def test_re2_only_syntax_is_accepted():
    """Prometheus (Go RE2) accepts character classes Python's re lacks."""
    selector = selectors.parse({"job": {"regex": "[[:alpha:]]+-api"}})
    assert selector.matchers[0].value == "[[:alpha:]]+-api"
    assert selector.example == {"job": "a-api"}
    assert selectors.parse({"job": {"regex": r"\pL+[[:digit:]]"}}).example == {"job": "a0"}


def test_regex_selectors_through_promtool(tmp_path, promtool_path):
    """Rules and generated tests with every operator pass promtool, and the vanished-service
    and absent-metric scenarios still hold for a selector with no equality at all."""
    from rule_helpers import generate_alerts, run_promtool, write_spec

    spec = write_spec(tmp_path, {"version": 1, "defaults": {"alertmanager": {"receivers": "none"}},
                                 "services": [
        {"name": "rockstar", "language": "go",
         "selector": {"job": {"regex": "rockstar|rockstar-canary"},
                      "route": {"not_regex": "/metrics|/healthz"}},
         "http": {"latency": {"p99": {"warning": "200ms"}}, "throughput": {"warning": "5/s"}},
         "runtime": {"memory": {"critical": "1GiB"}, "cpu": {"critical": "90%"}}},
        {"name": "canary", "language": "python",
         "selector": '{job=~"api-(canary|main)[0-9]*", env!="staging"}',
         "caches": [{"name": "a", "hit_ratio": {"critical": "50%"}}],
         "runtime": {"threads": {"critical": 100, "leak": {"window": "10m", "horizon": "1h"}}}},
    ]})
    alerts = generate_alerts(spec, tmp_path)
    rules = "".join(p.read_text() for p in sorted(alerts.glob("rockstar.*.rules.yml")))
    assert 'job=~"rockstar|rockstar-canary",route!~"/metrics|/healthz"' in rules
    checked, tested = run_promtool(alerts)
    assert checked.ok, checked.output
    assert tested.ok, tested.output
