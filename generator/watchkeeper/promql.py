"""Small PromQL text helpers, so every builder writes selectors and windows the same way."""

from __future__ import annotations

import functools
from collections.abc import Mapping

from watchkeeper.model import Selector


@functools.lru_cache(maxsize=4096)  # the same label values are quoted over and over
def quote(value: str) -> str:
    """A PromQL/series string literal with backslashes and quotes escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def matchers(labels: Mapping[str, str] | Selector, **extra: str) -> str:
    """``{job="x",code=~"5.."}``-style matcher text; `extra` values may carry their operator.

    `labels` is plain label values (each ``=``) or a service's Selector (each with its own
    operator). A value in `extra` starting with ``=~``, ``!~`` or ``!=`` keeps that
    operator; others are ``=``.
    """
    if isinstance(labels, Selector):
        if not extra:
            return _selector_text(labels.matchers)
        parts = [f"{m.name}{m.op}{quote(m.value)}" for m in labels.matchers]
    else:
        if not extra:  # series of test scenarios: the same label sets over and over
            return _labels_text(tuple(labels.items()))
        parts = [f"{name}={quote(value)}" for name, value in labels.items()]
    for name, value in extra.items():
        for op in ("=~", "!~", "!="):
            if value.startswith(op):
                parts.append(f"{name}{op}{quote(value[len(op):])}")
                break
        else:
            parts.append(f"{name}={quote(value)}")
    return "{" + ",".join(parts) + "}"


# Matcher texts of a selector's matchers or of (label, value) pairs repeat for every
# service and scenario; a bounded cache keeps memory flat in the number of services.
@functools.lru_cache(maxsize=4096)
def _selector_text(selector_matchers: tuple) -> str:
    return "{" + ",".join(f"{m.name}{m.op}{quote(m.value)}" for m in selector_matchers) + "}"


@functools.lru_cache(maxsize=4096)
def _labels_text(pairs: tuple[tuple[str, str], ...]) -> str:
    return "{" + ",".join(f"{name}={quote(value)}" for name, value in pairs) + "}"


def series(metric: str, labels: dict[str, str]) -> str:
    """A series selector as promtool's `input_series` wants it (labels in the given order)."""
    return metric + matchers(labels)
