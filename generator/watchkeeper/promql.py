"""Small PromQL text helpers, so every builder writes selectors and windows the same way."""

from __future__ import annotations

import functools


@functools.lru_cache(maxsize=4096)  # the same label values are quoted over and over
def quote(value: str) -> str:
    """A PromQL/series string literal with backslashes and quotes escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def matchers(labels: dict[str, str], **extra: str) -> str:
    """``{job="x",code=~"5.."}``-style matcher text; `extra` values may carry their operator.

    A value in `extra` starting with ``=~`` or ``!=`` keeps that operator; others are ``=``.
    """
    parts = [f"{name}={quote(value)}" for name, value in labels.items()]
    for name, value in extra.items():
        for op in ("=~", "!~", "!="):
            if value.startswith(op):
                parts.append(f"{name}{op}{quote(value[len(op):])}")
                break
        else:
            parts.append(f"{name}={quote(value)}")
    return "{" + ",".join(parts) + "}"


def series(metric: str, labels: dict[str, str]) -> str:
    """A series selector as promtool's `input_series` wants it (labels in the given order)."""
    return metric + matchers(labels)
