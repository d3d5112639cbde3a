"""Naming presets: the metric and label names other instrumentation already emits.

`metrics: otel` (or `metrics: {preset: otel, <key>: <name>…}`) points every rule at the names
of OpenTelemetry's semantic conventions as its Prometheus exporter writes them, so a service
instrumented with OpenTelemetry gets working rules without watchkeeper's exporters;
`prometheus-fastapi-instrumentator` does the same for that library. A preset sets metric
keys (as `metrics:` would), section settings the user left out (`http.histogram`…) and the
pool's state label; budgets whose input the instrumentation does not emit are refused with
a message saying what to add, unless the user names the metric.

Also here: histograms whose name says milliseconds (OpenTelemetry's older default
`http_server_duration_milliseconds`) are refused, since every budget and bucket bound the
rules use is in seconds — the rules would be silently 1000x off.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

PRESET_KEY = "preset"
#: Metric keys that are not metric names: the label and value selecting in-use connections
#: where the pool count is split by state (python: state="used").
POOL_STATE_KEYS = ("pool_state_label", "pool_state_value")


@dataclass(frozen=True)
class Preset:
    """Names one kind of instrumentation emits."""

    metrics: Mapping[str, str]
    settings: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # budget path -> (metric key that would make it work, why it is missing)
    missing: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    # the same under `serving: multiprocess`; "*" refuses every budget
    missing_multiprocess: Mapping[str, tuple[str, str]] = field(default_factory=dict)


_NO_OTEL = ("OpenTelemetry's semantic conventions have no metric for {what}; name one "
            "under metrics: {{{key}: <name>}} (watchkeeper's exporters emit {ours}) or remove "
            "the budget")

_RUNTIME_MP = ("under serving: multiprocess, prometheus-client serves no {what} in the merged "
               "view; call watchkeeper_exporters.install_runtime_metrics() in each worker (it "
               "writes them as {name}, summed over live workers) and confirm under metrics: "
               "{{{key}: {name}}}")
_MP_RUNTIME = {
    "runtime.memory": ("resident_memory", _RUNTIME_MP.format(
        what="process memory", name="process_resident_memory_bytes", key="resident_memory")),
    "runtime.threads": ("threads", _RUNTIME_MP.format(
        what="thread count", name="python_threads", key="threads")),
    "runtime.cpu": ("cpu_available", _RUNTIME_MP.format(
        what="CPU series", name="python_cpu_available_cores", key="cpu_available")),
}
PRESETS: dict[str, Preset] = {
    "otel": Preset(
        metrics={
            "resident_memory": "process_memory_usage_bytes",
            "threads": "process_thread_count",
            "cpu_seconds": "process_cpu_time_seconds_total",
            "pool_in_use": "db_client_connection_count",
            "pool_max": "db_client_connection_max",
            "pool_label": "db_client_connection_pool_name",
            "pool_wait_seconds": "db_client_connection_wait_time_seconds",
            "pool_state_label": "db_client_connection_state",
            "pool_state_value": "used",
        },
        settings={
            "http": {"histogram": "http_server_request_duration_seconds",
                     "status_label": "http_response_status_code"},
            "database": {"histogram": "db_client_operation_duration_seconds"},
        },
        missing={
            "runtime.gc_pause": ("gc_pause", _NO_OTEL.format(
                what="GC pauses", key="gc_pause", ours="python_gc_pause_seconds")),
            "runtime.tasks": ("tasks", _NO_OTEL.format(
                what="pending asyncio tasks", key="tasks", ours="python_asyncio_tasks")),
            "runtime.cpu": ("cpu_available", _NO_OTEL.format(
                what="the CPUs a process may use", key="cpu_available",
                ours="python_cpu_available_cores")),
        },
        missing_multiprocess={"*": ("", (
            "OpenTelemetry's Prometheus exporter serves the metrics of one process: behind a "
            "pre-forking server each scrape would see a random worker. Export through an "
            "OpenTelemetry Collector (one series per worker) and use serving: single"))},
    ),
    "prometheus-fastapi-instrumentator": Preset(
        metrics={},
        settings={"http": {"histogram": "http_request_duration_seconds",
                           "status_label": "status"}},
        missing={
            "http.error_ratio": ("", (
                "prometheus-fastapi-instrumentator's default http_request_duration_seconds "
                "has no status label, and the error-ratio rule counts 5xx on that histogram: "
                "add it with Instrumentator().add(metrics.latency(should_include_status=True))"
                " (grouped '5xx' values match) and confirm with http: {status_label: status}")),
        },
        missing_multiprocess=_MP_RUNTIME,
    ),
}
NAMES = tuple(PRESETS)
#: Metric keys naming histograms (budgets compare seconds against their bucket bounds).
_HISTOGRAM_KEYS = ("job_duration", "gc_pause", "pool_wait_seconds")
_MILLIS = re.compile(r"_(milliseconds|millis|ms|microseconds|us)(_bucket|_sum|_count)?$")


def preset_of(metrics: Mapping[str, str] | None) -> Preset | None:
    name = (metrics or {}).get(PRESET_KEY)
    return PRESETS[name] if name else None


def as_mapping(value: Any) -> Any:
    """`metrics: otel` is short for `metrics: {preset: otel}`."""
    return {PRESET_KEY: value} if isinstance(value, str) else value


def check_preset_name(name: str) -> None:
    if name not in PRESETS:
        raise ValueError(f"unknown metrics preset {name!r}; known: {', '.join(NAMES)}")


def setting(preset: Preset | None, section: str, name: str) -> str | None:
    return None if preset is None else preset.settings.get(section, {}).get(name)


def check_service(metrics: Mapping[str, str], budgets: Mapping[str, bool],
                  settings: Mapping[str, Mapping[str, Any]], explicit: set[str],
                  serving: str = "single") -> None:
    """Raise ValueError for a budget the preset (in this serving mode) cannot feed, or a
    histogram in milliseconds.

    `budgets`: spec paths that are declared; `settings`: section -> resolved settings;
    `explicit`: "section.setting" names the user wrote themselves. watchkeeper's own
    exporters serve every series in both modes (multiprocess: per-worker values summed over
    live workers), so without a preset nothing is refused.
    """
    preset = preset_of(metrics)
    missing = dict(preset.missing) if preset else {}
    if preset and serving == "multiprocess":
        everything = preset.missing_multiprocess.get("*")
        if everything and any(budgets.values()):
            raise ValueError(f"serving: multiprocess: {everything[1]}")
        missing.update(preset.missing_multiprocess)
    for path, (key, message) in missing.items():
        overridden = (key and key in metrics) or \
            (path == "http.error_ratio" and "http.status_label" in explicit)
        if budgets.get(path) and not overridden:
            raise ValueError(f"{path}: {message}")
    names = {f"{section}.histogram": values.get("histogram")
             for section, values in settings.items()}
    names.update({f"metrics.{key}": metrics.get(key) for key in _HISTOGRAM_KEYS})
    for where, name in names.items():
        if name and _MILLIS.search(name):
            raise ValueError(
                f"{where} {name!r} is in {_MILLIS.search(name).group(1)}, but budgets and "
                "the bucket bounds the rules compare are seconds (the rules would be 1000x "
                "off). OpenTelemetry's Python SDK writes http_server_duration_milliseconds "
                "under its old HTTP conventions: set OTEL_SEMCONV_STABILITY_OPT_IN=http to "
                "get http_server_request_duration_seconds (what `metrics: otel` reads), or "
                "export a seconds histogram")
