"""Reading metric values back from a registry or a /metrics body, for assertions.

A small parser of the text format that keeps sample names exactly as exposed (Prometheus does
too); prometheus-client's parser appends ``_total`` to counters such as postgres_exporter's
``pg_stat_database_blks_hit``, which is not what a Prometheus server stores.
"""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry, generate_latest

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\d+)?$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        assert match, f"unparsable exposition line: {line!r}"
        name, labels, value = match.groups()
        pairs = frozenset((k, v.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\"))
                          for k, v in _LABEL.findall(labels or ""))
        out[(name, pairs)] = float(value)
    return out


def value(source: str | CollectorRegistry, name: str, **labels: str) -> float | None:
    """The value of the sample ``name`` with exactly ``labels``, or None."""
    text = generate_latest(source).decode() if isinstance(source, CollectorRegistry) else source
    return samples(text).get((name, frozenset(labels.items())))


def names(text: str) -> set[str]:
    return {name for name, _ in samples(text)}
