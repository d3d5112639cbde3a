"""Alertmanager routing generated from the same spec: `alerts/alertmanager.yml`.

Severity picks the receiver (critical pages, warning opens a ticket); notifications group
by alert, service and signal; a critical alert silences its own warning (same service,
signal, SLO and instance: an SLO's fast-burn page holds back its own slow-burn ticket, not
another SLO's), and a service that is down silences everything else it would raise,
since those alerts are consequences, not news.
"""

from __future__ import annotations

from watchkeeper.spec import AlertmanagerSpec, Receiver
from watchkeeper.units import prometheus_duration

GROUP_BY = ["alertname", "service", "signal"]
ROUTES = (("page", "critical"), ("ticket", "warning"))


def _receiver(name: str, receiver: Receiver) -> dict:
    config: dict = {"name": name}
    if receiver.webhook_url:
        config["webhook_configs"] = [{"url": receiver.webhook_url, "send_resolved": True}]
    if receiver.email:
        config["email_configs"] = [{
            "to": receiver.email.to, "from": receiver.email.from_,
            "smarthost": receiver.email.smarthost, "require_tls": receiver.email.require_tls,
            "send_resolved": True,
        }]
    return config


def config(settings: AlertmanagerSpec) -> dict:
    """The Alertmanager configuration document."""
    return {
        "route": {
            "receiver": "ticket",
            "group_by": GROUP_BY,
            "group_wait": prometheus_duration(settings.group_wait),
            "group_interval": prometheus_duration(settings.group_interval),
            "repeat_interval": prometheus_duration(settings.repeat_interval),
            "routes": [{"receiver": receiver, "matchers": [f'severity="{severity}"']}
                       for receiver, severity in ROUTES],
        },
        "inhibit_rules": [
            {"source_matchers": ['severity="critical"'],
             "target_matchers": ['severity="warning"'],
             "equal": ["service", "signal", "slo", "instance"]},
            {"source_matchers": ['alertname="ServiceDown"'],
             "target_matchers": ['alertname!="ServiceDown"'],
             "equal": ["service"]},
        ],
        "receivers": [_receiver(name, getattr(settings.receivers, name)) for name, _ in ROUTES],
    }
