"""Language profiles: every difference between a Go and a Python service, in one place.

Signals declare the metric keys they read with Go's (client_golang) names as defaults;
a profile renames what the Python exporters name differently and describes the shapes
that differ (see :class:`watchkeeper.model.Profile`). Builders read only the profile.
"""

from __future__ import annotations

from collections.abc import Mapping

from watchkeeper import presets
from watchkeeper.model import Profile
from watchkeeper.signals import metric_defaults

GO_ONLY = "'runtime.tasks' (asyncio tasks) is for python services; go services have " \
          "'runtime.goroutines' instead"
PYTHON_ONLY = "'runtime.goroutines' is for go services; python services have " \
              "'runtime.tasks' (asyncio tasks) instead"

# Per language: metric names that differ from the defaults, and the shapes that differ.
LANGUAGES: dict[str, dict] = {
    "go": {"metrics": {}, "unsupported": {"runtime.tasks": GO_ONLY}},
    "python": {
        "metrics": {
            "threads": "python_threads",
            "gc_pause": "python_gc_pause_seconds",
            "pool_in_use": "db_client_connection_count",
            "pool_max": "db_client_connection_max",
            "pool_label": "pool",
            "pool_wait_seconds": "db_client_connection_wait_time_seconds",
            "cpu_available": "python_cpu_available_cores",
        },
        "pool_state": ("state", "used"),
        "pool_wait_suffix": "_sum",
        "gc_pause": "histogram",
        "unsupported": {"runtime.goroutines": PYTHON_ONLY},
    },
}
LANGUAGE_NAMES = tuple(LANGUAGES)


def profile(language: str, overrides: Mapping[str, str] | None = None) -> Profile:
    """The profile of `language`, then the naming preset's names (`metrics: otel`), then the
    spec's own `metrics:` overrides; the pool's state label and in-use value are overridable
    as `pool_state_label` / `pool_state_value`."""
    shape = dict(LANGUAGES[language])
    preset = presets.preset_of(overrides)
    named = {**(preset.metrics if preset else {}), **(overrides or {})}
    named.pop(presets.PRESET_KEY, None)
    label = named.pop("pool_state_label", None)
    value = named.pop("pool_state_value", None)
    if label or value:
        default = shape.get("pool_state") or ("state", "used")
        shape["pool_state"] = (label or default[0], value or default[1])
        shape["pool_wait_suffix"] = shape.get("pool_wait_suffix") or "_sum"
    metrics = {**metric_defaults(), **shape.pop("metrics"), **named}
    return Profile(language=language, metrics=metrics, **shape)


def metric_keys() -> tuple[str, ...]:
    return tuple(metric_defaults())
