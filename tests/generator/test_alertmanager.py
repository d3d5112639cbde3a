"""Generated Alertmanager routing, checked with the real amtool."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
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
