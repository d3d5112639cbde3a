"""The backtest replays exactly what Prometheus' own rule evaluation does on the same series.

Prometheus (promtool's rule unit tests run the real rule manager) evaluates the generated rule
file — recording rules and all, nothing inlined — over the same samples; at every minute the
set of firing alerts must be the one the backtest's episodes say.
"""

from __future__ import annotations

import subprocess

import yaml
from backtest.conftest import SPEC
from backtest.test_incidents import backtest
from watchkeeper.cli import main

FIRST, LAST = 10, 359  # minutes of history replayed (the backtest's range)


def generated_rules(tmp_path) -> dict:
    """The spec's rule file as `watchkeeper generate` writes it, annotations dropped (they are
    templates of the value, which promtool would compare too; they do not decide firing)."""
    assert main(["generate", str(SPEC), "--out", str(tmp_path), "--only", "alerts"]) == 0
    files = sorted((tmp_path / "alerts").glob("checkout.*.rules.yml"))  # one per rule group
    document = {"groups": [group for path in files
                           for group in yaml.safe_load(path.read_text())["groups"]]}
    for group in document["groups"]:
        for rule in group["rules"]:
            rule.pop("annotations", None)
    return document


def firing_at(episodes: list[dict], moment: float, alert: str) -> list[dict]:
    return sorted((e["labels"] for e in episodes
                   if e["alert"] == alert and e["start"] <= moment
                   and (moment < e["end"] or (e["open"] and moment <= e["end"]))),
                  key=lambda labels: sorted(labels.items()))


def promtool_test(tmp_path, promtool_path, rules: dict, series: list[dict],
                  episodes: list[dict], start: int) -> subprocess.CompletedProcess:
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules))
    names = sorted({r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r})
    cases = [{"eval_time": f"{minute}m", "alertname": name,
              "exp_alerts": [{"exp_labels": labels}
                             for labels in firing_at(episodes, start + minute * 60, name)]}
             for minute in range(FIRST, LAST + 1) for name in names]
    test = {"rule_files": ["rules.yml"], "evaluation_interval": "1m",
            "tests": [{"interval": "1m", "input_series": series, "alert_rule_test": cases}]}
    (tmp_path / "test.yml").write_text(yaml.safe_dump(test))
    return subprocess.run([promtool_path, "test", "rules", str(tmp_path / "test.yml")],
                          capture_output=True, text=True, timeout=600)


def test_same_firing_alerts_as_prometheus_every_minute(capsys, prometheus, start, synthetic,
                                                       tmp_path, promtool_path):
    episodes = backtest(capsys, prometheus, start)["episodes"]
    assert len(episodes) >= 5
    rules = generated_rules(tmp_path)
    result = promtool_test(tmp_path, promtool_path, rules, synthetic.input_series(), episodes,
                           start)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]

    # The comparison can fail: an episode one minute late is caught.
    shifted = [dict(e, start=e["start"] + 60) if i == 0 else e for i, e in enumerate(episodes)]
    late = promtool_test(tmp_path, promtool_path, rules, synthetic.input_series(), shifted,
                         start)
    assert late.returncode != 0
