"""Assemble the pieces every signal builds into one Prometheus rule file per service."""

from __future__ import annotations

from watchkeeper import naming
from watchkeeper.model import Alert, Piece, Recording, Service
from watchkeeper.signals import SIGNALS, charts, joint_scenarios
from watchkeeper.units import prometheus_duration
from watchkeeper.writers import emit_entry, open_list, value_text


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


def _recording_rule(recording: Recording, out: list[str]) -> None:
    out.append(f"  - record: {value_text(recording.record, '    ')}\n"
               f"    expr: {value_text(recording.expr, '    ')}\n")
    if recording.labels:
        emit_entry(out, "    ", "labels", recording.labels, "    ")


def _alert_rule(alert: Alert, out: list[str]) -> None:
    out.append(f"  - alert: {value_text(alert.name, '    ')}\n"
               f"    expr: {value_text(alert.expr, '    ')}\n")
    if alert.for_:
        out.append(f"    for: {value_text(prometheus_duration(alert.for_), '    ')}\n")
    if alert.keep_firing_for:
        out.append(f"    keep_firing_for: "
                   f"{value_text(prometheus_duration(alert.keep_firing_for), '    ')}\n")
    emit_entry(out, "    ", "labels", alert.labels, "    ")
    emit_entry(out, "    ", "annotations", alert.annotations, "    ")


def rule_file(groups: list[Piece], header: str = "") -> str:
    """The text of a Prometheus rule file (after `header`), written line by line from the
    groups (no intermediate document: rule files are a third of the YAML generated; see
    `writers.value_text`)."""
    out = [header]
    open_list(out, "groups", groups)
    for group in groups:
        out.append(f"- name: {value_text(group.group, '  ')}\n")
        open_list(out, "  rules", group.recordings or group.alerts)
        for recording in group.recordings:
            _recording_rule(recording, out)
        for alert in group.alerts:
            _alert_rule(alert, out)
    return "".join(out)
