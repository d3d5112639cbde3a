"""Assemble the pieces every signal builds into one Prometheus rule file per service."""

from __future__ import annotations

from watchkeeper import naming
from watchkeeper.model import Alert, Piece, Recording, Service
from watchkeeper.signals import SIGNALS, charts, joint_scenarios
from watchkeeper.units import prometheus_duration


def build_groups(service: Service) -> list[Piece]:
    """Run every registered signal and merge their pieces into one rule group per section
    (a Piece named ``<service>-<section>``), in registry order, then add the links
    (runbook, dashboard panel) to every alert in one pass.

    Two signals may need the same recording (latency and errors both read the request
    rate); identical recordings are kept once, since a series written twice per evaluation
    would be a duplicate sample. Cases on a shared event count (`Piece.joints`) are built
    together once the group is complete (`signals.joint_scenarios`).
    """
    groups: dict[str, Piece] = {}
    joints_at: dict[str, int] = {}  # where a group's joint scenarios go: at its first joint
    for signal in SIGNALS:
        for piece in signal.build(service):
            group = groups.setdefault(piece.group, Piece(f"{service.name}-{piece.group}"))
            if piece.joints:
                joints_at.setdefault(piece.group, len(group.scenarios))
            _merge(group, piece)
    for key, at in joints_at.items():
        groups[key].scenarios[at:at] = joint_scenarios(groups[key].joints, service)
    pieces = list(groups.values())
    naming.annotate(service, pieces, charts(service) if service.grafana_url else ())
    return pieces


def _merge(group: Piece, piece: Piece) -> None:
    for recording in piece.recordings:
        if recording not in group.recordings:
            group.recordings.append(recording)
    group.alerts.extend(piece.alerts)
    group.scenarios.extend(piece.scenarios)
    group.joints.extend(piece.joints)
    group.needs += tuple(n for n in piece.needs if n not in group.needs)
    if piece.test_step is not None:
        assert group.test_step in (None, piece.test_step), f"{group.group}: two test steps"
        group.test_step = piece.test_step


def _recording_rule(recording: Recording) -> dict:
    rule: dict = {"record": recording.record, "expr": recording.expr}
    if recording.labels:
        rule["labels"] = dict(recording.labels)
    return rule


def _alert_rule(alert: Alert) -> dict:
    rule: dict = {"alert": alert.name, "expr": alert.expr}
    if alert.for_:
        rule["for"] = prometheus_duration(alert.for_)
    if alert.keep_firing_for:
        rule["keep_firing_for"] = prometheus_duration(alert.keep_firing_for)
    rule["labels"] = dict(alert.labels)
    rule["annotations"] = dict(alert.annotations)
    return rule


def rule_file(groups: list[Piece]) -> dict:
    """The YAML document of a Prometheus rule file."""
    return {"groups": [
        {"name": group.group,
         "rules": [*map(_recording_rule, group.recordings), *map(_alert_rule, group.alerts)]}
        for group in groups
    ]}
