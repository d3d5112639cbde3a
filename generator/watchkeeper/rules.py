"""Assemble the pieces every signal builds into one Prometheus rule file per service."""

from __future__ import annotations

from dataclasses import replace

from watchkeeper import naming
from watchkeeper.model import Alert, Piece, Recording, Service
from watchkeeper.parts import Parts
from watchkeeper.signals import SIGNALS, charts, joint_scenarios
from watchkeeper.signals.base import Signal
from watchkeeper.units import prometheus_duration
from watchkeeper.writers import emit_entry, open_list, value_text


def build_groups(service: Service, parts: Parts | None = None) -> list[Piece]:
    """Run every registered signal and merge their pieces into one rule group per section
    (a Piece named ``<service>-<section>``), in registry order, then add the links
    (runbook, dashboard panel) to every alert in one pass.

    Two signals may need the same recording (latency and errors both read the request
    rate); identical recordings are kept once, since a series written twice per evaluation
    would be a duplicate sample. Cases on a shared event count (`Piece.joints`) are built
    together once the group is complete (`signals.joint_scenarios`).

    With `parts`, a signal's pieces and a group assembled from the same pieces come from an
    earlier service with the same inputs where there is one (see `parts.Parts`): such
    pieces are shared, so nothing here changes them (the links go on copies).
    """
    seen = parts.service(service) if parts is not None else None
    sections: dict[str, list[tuple[Signal, Piece]]] = {}
    for signal in SIGNALS:
        for piece in signal.build(service) if seen is None else seen.build(signal):
            sections.setdefault(piece.group, []).append((signal, piece))
    pieces = []
    for section, members in sections.items():
        def assemble(view: Service, section=section, members=members) -> Piece:
            return _assemble(view, section, [piece for _, piece in members])

        pieces.append(assemble(service) if seen is None else seen.group(section, members,
                                                                          assemble))
    if service.runbook_url or service.grafana_url:
        if seen is not None:  # held groups are shared: the links go on copies
            pieces = [replace(p, recordings=list(p.recordings), alerts=list(p.alerts),
                              scenarios=list(p.scenarios), joints=list(p.joints))
                      for p in pieces]
        naming.annotate(service, pieces, charts(service, seen) if service.grafana_url else ())
    return pieces


def _assemble(service: Service, section: str, members: list[Piece]) -> Piece:
    """One rule group from its signals' pieces, in registry order, its joint scenarios at
    its first joint."""
    group = Piece(f"{service.name}-{section}")
    at = None
    for piece in members:
        if piece.joints and at is None:
            at = len(group.scenarios)
        _merge(group, piece)
    if at is not None:
        group.scenarios[at:at] = joint_scenarios(group.joints, service)
    return group


def _merge(group: Piece, piece: Piece) -> None:
    for recording in piece.recordings:
        if recording not in group.recordings:
            group.recordings.append(recording)
    group.alerts.extend(piece.alerts)
    group.scenarios.extend(piece.scenarios)
    group.joints.extend(piece.joints)
    group.needs += tuple(n for n in piece.needs if n not in group.needs)
    if piece.interval is not None:
        assert group.interval in (None, piece.interval), f"{group.group}: two intervals"
        group.interval = piece.interval
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
        if group.interval is not None:
            out.append(f"  interval: {value_text(prometheus_duration(group.interval), '  ')}\n")
        open_list(out, "  rules", group.recordings or group.alerts)
        for recording in group.recordings:
            _recording_rule(recording, out)
        for alert in group.alerts:
            _alert_rule(alert, out)
    return "".join(out)
