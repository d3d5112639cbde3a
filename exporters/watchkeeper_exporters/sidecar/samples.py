"""Metric families of one scrape and their text exposition.

The sidecar writes the text format itself instead of going through prometheus-client's
``Metric`` types because postgres_exporter's counters have no ``_total`` suffix
(``pg_stat_database_blks_hit``), which prometheus-client would rename; keeping the names and
types identical is what lets existing dashboards work unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass
class Family:
    name: str
    doc: str
    type: str
    samples: list[tuple[dict[str, str], float]] = field(default_factory=list)


class Samples:
    """Families collected by one target's scrape (discarded whole if the scrape fails)."""

    def __init__(self) -> None:
        self.families: dict[str, Family] = {}

    def add(self, kind: str, name: str, doc: str, value: float, labels: dict[str, str]) -> None:
        family = self.families.get(name)
        if family is None:
            family = self.families[name] = Family(name, doc, kind)
        family.samples.append((labels, float(value)))

    def gauge(self, name: str, doc: str, value: float, **labels: str) -> None:
        self.add("gauge", name, doc, value, labels)

    def counter(self, name: str, doc: str, value: float, **labels: str) -> None:
        self.add("counter", name, doc, value, labels)

    def merge(self, other: Samples) -> None:
        for family in other.families.values():
            mine = self.families.setdefault(
                family.name, Family(family.name, family.doc, family.type))
            mine.samples.extend(family.samples)


def _escape(value: str) -> str:
    if "\\" not in value and "\n" not in value and '"' not in value:
        return value
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _number(value: float) -> str:
    """Go-compatible number text; ``repr`` is exact and much cheaper than formatting."""
    if value != value:
        return "NaN"
    if value in (math.inf, -math.inf):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value)


def render(families: Iterable[Family]) -> str:
    """Prometheus text format 0.0.4 of ``families``."""
    out: list[str] = []
    for family in families:
        doc = family.doc.replace("\\", r"\\").replace("\n", r"\n")
        out.append(f"# HELP {family.name} {doc}\n# TYPE {family.name} {family.type}\n")
        for labels, value in family.samples:
            label_text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
            label_text = "{" + label_text + "}" if label_text else ""
            out.append(f"{family.name}{label_text} {_number(value)}\n")
    return "".join(out)
