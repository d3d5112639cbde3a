"""The rules to replay, taken as data: the Prometheus rule-file documents `generate` writes.

Reading the generated documents (``{"groups": [{"name", "rules": [...]}]}``) rather than the
generator's internal model keeps the backtest independent of how signals are built: any alert
the generator emits, including ones added later, is replayed the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml
from watchkeeper import naming
from watchkeeper.backtest.promql import Recording, parse_duration


@dataclass(frozen=True)
class AlertRule:
    """One alerting rule of one service, as Prometheus would load it."""

    service: str
    group: str
    name: str
    expr: str
    for_: float
    keep_firing_for: float
    labels: tuple[tuple[str, str], ...]

    @property
    def severity(self) -> str:
        return dict(self.labels).get("severity", "")


@dataclass
class RuleSet:
    """Every service's alerts, and every recording rule Prometheus would hold at once."""

    alerts: dict[str, list[AlertRule]]          # service → alerts, in file order
    recordings: dict[str, list[Recording]]      # record name → its definitions


def from_documents(documents: Mapping[str, Mapping]) -> RuleSet:
    """Build a RuleSet from ``{service: rule-file document}``."""
    alerts: dict[str, list[AlertRule]] = {}
    recordings: dict[str, list[Recording]] = {}
    for service, document in documents.items():
        alerts[service] = []
        for group in document.get("groups") or []:
            for rule in group.get("rules") or []:
                labels = tuple(sorted((str(k), str(v))
                                      for k, v in (rule.get("labels") or {}).items()))
                if "record" in rule:
                    definition = Recording(rule["record"], rule["expr"], labels)
                    known = recordings.setdefault(rule["record"], [])
                    if definition not in known:
                        known.append(definition)
                elif "alert" in rule:
                    alerts[service].append(AlertRule(
                        service, group["name"], rule["alert"], rule["expr"],
                        _seconds(rule.get("for")), _seconds(rule.get("keep_firing_for")),
                        labels))
    return RuleSet(alerts, recordings)


def _seconds(value: object) -> float:
    return parse_duration(str(value)) if value else 0.0


def generated_documents(spec: str, ext_vars: Mapping[str, str] | None = None) -> dict[str, dict]:
    """Generate the spec's rule files in memory and parse them, one document per service
    (its rule groups, written one file each as ``alerts/<service>.<group>.rules.yml``).

    Uses the same entry point as `watchkeeper generate`, so the replayed rules are exactly the
    ones that would be deployed.
    """
    from watchkeeper.generate import generate
    from watchkeeper.load import load_spec

    files = generate(load_spec(spec, dict(ext_vars or {})), Path(spec).name, ("alerts",))
    documents = {}
    for path, text in sorted(files.items()):
        name = naming.parse_path(path)
        if name and not name.test:
            groups = documents.setdefault(name.service, {"groups": []})["groups"]
            groups.extend(yaml.safe_load(text).get("groups") or [])
    return documents


def rule_set(spec: str, ext_vars: Mapping[str, str] | None = None) -> RuleSet:
    return from_documents(generated_documents(spec, ext_vars))
