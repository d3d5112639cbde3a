"""Generated Alertmanager routing, checked with the real amtool."""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path

import pytest
import yaml
from rule_helpers import generate_alerts, write_spec

REPO = Path(__file__).resolve().parent.parent.parent


def routes_to(amtool: str, config: Path, *labels: str) -> str:
    result = subprocess.run([amtool, "config", "routes", "test", f"--config.file={config}",
                             *labels], capture_output=True, text=True, check=True)
    return result.stdout.strip()


def test_example_config_is_valid(amtool):
    result = subprocess.run([amtool, "check-config", str(REPO / "alerts" / "alertmanager.yml")],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 inhibit rules" in result.stdout


@pytest.mark.parametrize(("labels", "receiver"), [
    (("severity=critical", "service=checkout", "signal=latency"), "page"),
    (("severity=warning", "service=checkout", "signal=cache"), "ticket"),
    (("severity=critical", "alertname=ServiceDown", "signal=absent"), "page"),
    (("severity=info",), "ticket"),  # anything unexpected still reaches a human
])
def test_severity_picks_the_receiver(amtool, labels, receiver):
    assert routes_to(amtool, REPO / "alerts" / "alertmanager.yml", *labels) == receiver


def test_receivers_from_the_spec(tmp_path, amtool):
    spec = write_spec(tmp_path, {
        "version": 1,
        "defaults": {"alertmanager": {
            "receivers": {
                "page": {"webhook_url": "http://127.0.0.1:7000/hook"},
                "ticket": {"email": {"to": "team@example.com", "from": "am@example.com",
                                     "smarthost": "mail.example.com:587"}}},
            "group_wait": "10s"}},
        "services": [{"name": "a", "selector": {"job": "a"}, "language": "go",
                      "runtime": {"memory": {"critical": "1GiB"}}}],
    })
    config = generate_alerts(spec, tmp_path) / "alertmanager.yml"
    checked = subprocess.run([amtool, "check-config", str(config)], capture_output=True,
                             text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    text = config.read_text()
    assert "http://127.0.0.1:7000/hook" in text and "team@example.com" in text
    assert "group_wait: 10s" in text


# A team's existing Alertmanager config, as written by hand: the fragment goes into it.
TEAM_CONFIG = {
    "route": {"receiver": "team-default", "group_by": ["alertname"],
              "routes": [{"receiver": "team-db", "matchers": ['team="db"']}]},
    "inhibit_rules": [{"source_matchers": ['alertname="NodeDown"'],
                       "target_matchers": ['alertname="DiskFull"'], "equal": ["instance"]}],
    "receivers": [{"name": "team-default"}, {"name": "team-db"},
                  {"name": "page", "webhook_configs": [{"url": "http://127.0.0.1:7/their"}]}],
}


def merge(team: dict, fragment: dict) -> dict:
    """What docs/alertmanager.md tells a team to do with alerts/alertmanager-routes.yml."""
    merged = copy.deepcopy(team)
    merged["route"]["routes"] = [fragment["route"], *merged["route"].get("routes", [])]
    merged["inhibit_rules"] = [*merged.get("inhibit_rules", []), *fragment["inhibit_rules"]]
    merged["receivers"] = [*merged["receivers"], *fragment["receivers"]]
    return merged


@pytest.mark.parametrize(("labels", "receiver"), [
    (("service=tickets-api", "severity=critical", "signal=latency"), "watchkeeper-page"),
    (("service=festivals-api", "severity=warning", "signal=cache"), "watchkeeper-ticket"),
    (("service=nextevent-api", "severity=info"), "watchkeeper-ticket"),
    (("service=billing", "severity=critical", "team=db"), "team-db"),  # not ours: untouched
    (("alertname=NodeDown",), "team-default"),
])
def test_fragment_merges_into_an_existing_config(tmp_path, amtool, labels, receiver):
    fragment = yaml.safe_load((REPO / "alerts" / "alertmanager-routes.yml").read_text())
    merged = tmp_path / "alertmanager.yml"
    merged.write_text(yaml.safe_dump(merge(TEAM_CONFIG, fragment), sort_keys=False))
    checked = subprocess.run([amtool, "check-config", str(merged)], capture_output=True,
                             text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "3 inhibit rules" in checked.stdout and "5 receivers" in checked.stdout
    assert routes_to(amtool, merged, *labels) == receiver


def test_fragment_inhibitions_spare_alerts_of_other_services():
    fragment = yaml.safe_load((REPO / "alerts" / "alertmanager-routes.yml").read_text())
    for rule in fragment["inhibit_rules"]:
        for side in ("source_matchers", "target_matchers"):
            assert 'service=~"festivals-api|nextevent-api|tickets-api"' in rule[side]
