"""Alertmanager routing generated from the same spec.

Two files, both from `defaults.alertmanager` (none at all for `receivers: none`):

* `alerts/alertmanager.yml`: a whole Alertmanager configuration, for a team without one.
* `alerts/alertmanager-routes.yml`: a fragment for a team that already runs Alertmanager:
  one route (matching only this spec's services) to put first under their `route.routes`,
  and inhibit rules and receivers to append to theirs (docs/alertmanager.md shows how).
  Receiver names carry a `watchkeeper-` prefix so they cannot clash with the team's own.

Severity picks the receiver (critical pages, warning opens a ticket); notifications group
by alert, service and signal; a critical alert silences its own warning (same service,
signal, SLO and instance: an SLO's fast-burn page holds back its own slow-burn ticket, not
another SLO's), and a service that is down silences everything else it would raise,
since those alerts are consequences, not news.
"""

from __future__ import annotations

from collections.abc import Sequence

from watchkeeper.model import Receiver, Receivers, Routing, Spec, service_names
from watchkeeper.units import prometheus_duration
from watchkeeper.writers import to_yaml

CONFIG = "alerts/alertmanager.yml"
FRAGMENT = "alerts/alertmanager-routes.yml"
FRAGMENT_PREFIX = "watchkeeper-"
GROUP_BY = ["alertname", "service", "signal"]
ROUTES = (("page", "critical"), ("ticket", "warning"))
FRAGMENT_HOWTO = (
    "# Merge into an existing Alertmanager config: put `route` first under your route.routes,\n"
    "# append `inhibit_rules` and `receivers` to yours. See docs/alertmanager.md.\n")


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


def _timings(settings: Routing) -> dict:
    return {"group_by": GROUP_BY,
            "group_wait": prometheus_duration(settings.group_wait),
            "group_interval": prometheus_duration(settings.group_interval),
            "repeat_interval": prometheus_duration(settings.repeat_interval)}


def _severity_routes(prefix: str) -> list[dict]:
    return [{"receiver": prefix + receiver, "matchers": [f'severity="{severity}"']}
            for receiver, severity in ROUTES]


def _inhibit_rules(scope: list[str]) -> list[dict]:
    """`scope`: extra matchers on both sides, so a merged fragment never inhibits alerts
    that are not this spec's."""
    return [
        {"source_matchers": [*scope, 'severity="critical"'],
         "target_matchers": [*scope, 'severity="warning"'],
         "equal": ["service", "signal", "slo", "instance"]},
        {"source_matchers": [*scope, 'alertname="ServiceDown"'],
         "target_matchers": [*scope, 'alertname!="ServiceDown"'],
         "equal": ["service"]},
    ]


def _receivers(receivers: Receivers, prefix: str) -> list[dict]:
    return [_receiver(prefix + name, getattr(receivers, name)) for name, _ in ROUTES]


def config(settings: Routing) -> dict:
    """The whole Alertmanager configuration document."""
    assert settings.receivers is not None
    return {
        "route": {"receiver": "ticket", **_timings(settings), "routes": _severity_routes("")},
        "inhibit_rules": _inhibit_rules([]),
        "receivers": _receivers(settings.receivers, ""),
    }


def fragment(settings: Routing, services: Sequence[str]) -> dict:
    """The route subtree, inhibit rules and receivers to merge into an existing config."""
    assert settings.receivers is not None
    scope = [f'service=~"{"|".join(sorted(services))}"']
    return {
        "route": {"receiver": FRAGMENT_PREFIX + "ticket", "matchers": scope,
                  **_timings(settings), "routes": _severity_routes(FRAGMENT_PREFIX)},
        "inhibit_rules": _inhibit_rules(scope),
        "receivers": _receivers(settings.receivers, FRAGMENT_PREFIX),
    }


def files(spec: Spec, header: str) -> dict[str, str]:
    """Both routing files, or none when the spec says `receivers: none` (rules only)."""
    settings = spec.alertmanager
    if settings is None or settings.receivers is None:
        return {}
    return {CONFIG: to_yaml(config(settings), header),
            FRAGMENT: to_yaml(fragment(settings, service_names(spec.services)),
                              header + FRAGMENT_HOWTO)}
