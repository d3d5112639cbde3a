"""Reading metric values back from a registry or a /metrics body, for assertions."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(source: str | CollectorRegistry, name: str, **labels: str) -> float | None:
    """The value of the sample ``name`` with exactly ``labels``, or None."""
    text = generate_latest(source).decode() if isinstance(source, CollectorRegistry) else source
    return samples(text).get((name, frozenset(labels.items())))


def names(text: str) -> set[str]:
    return {name for name, _ in samples(text)}
