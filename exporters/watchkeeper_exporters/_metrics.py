"""One place that creates each contract metric once per registry.

Metric names are the contract with the generator's rules, so they are spelled here and nowhere
else. Metrics are created lazily and cached per registry: applications use the default registry,
tests pass a fresh ``CollectorRegistry`` and never see each other's samples.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from typing import Any, TypeVar

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

from . import _sync

T = TypeVar("T")

#: Web latency buckets (seconds): dense between 5 ms and 1 s where latency budgets live.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75,
                1.0, 1.5, 2.5, 5.0, 10.0)
#: Query latency buckets (seconds): queries are budgeted in single-digit milliseconds.
DB_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
#: Pool checkout waits (seconds): a healthy pool answers in microseconds.
WAIT_BUCKETS = (0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0)
#: GC pauses (seconds): gen0 pauses are microseconds, full collections up to tens of ms.
GC_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
              0.25, 1.0)
#: Job durations (seconds): background work ranges from milliseconds to minutes.
JOB_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0)

_cache: weakref.WeakKeyDictionary[CollectorRegistry, dict[str, object]] = (
    weakref.WeakKeyDictionary()
)
_lock = threading.Lock()


def _once(registry: CollectorRegistry | None, name: str,
          factory: Callable[[CollectorRegistry], T]) -> T:
    """Return the metric ``name`` of ``registry``, creating it on first use."""
    reg = REGISTRY if registry is None else registry
    _sync.ensure_collector(reg)  # first, so hooks run before these metrics are collected
    with _lock:
        per_registry = _cache.setdefault(reg, {})
        if name not in per_registry:
            per_registry[name] = factory(reg)
        return per_registry[name]  # type: ignore[return-value]


def http_duration(registry: CollectorRegistry | None = None) -> Histogram:
    return _once(registry, "http", lambda r: Histogram(
        "http_request_duration_seconds", "HTTP request latency by route template and status.",
        ["method", "route", "code"], buckets=HTTP_BUCKETS, registry=r))


def db_query_duration(registry: CollectorRegistry | None = None) -> Histogram:
    return _once(registry, "db", lambda r: Histogram(
        "db_query_duration_seconds",
        "Database statement latency by operation, table and result (success/error).",
        ["operation", "table", "result"], buckets=DB_BUCKETS, registry=r))


def pool_wait(registry: CollectorRegistry | None = None) -> Histogram:
    return _once(registry, "pool_wait", lambda r: Histogram(
        "db_client_connection_wait_time_seconds",
        "Time spent checking a connection out of the pool.",
        ["pool"], buckets=WAIT_BUCKETS, registry=r))


def pool_timeouts(registry: CollectorRegistry | None = None) -> Counter:
    return _once(registry, "pool_timeouts", lambda r: Counter(
        "db_client_connection_timeouts", "Checkouts that gave up waiting for a connection.",
        ["pool"], registry=r))


def cache_hits(registry: CollectorRegistry | None = None) -> Counter:
    return _once(registry, "cache_hits", lambda r: Counter(
        "cache_hits", "Cache lookups that found the key.", ["cache"], registry=r))


def cache_misses(registry: CollectorRegistry | None = None) -> Counter:
    return _once(registry, "cache_misses", lambda r: Counter(
        "cache_misses", "Cache lookups that did not find the key.", ["cache"], registry=r))


def cache_errors(registry: CollectorRegistry | None = None) -> Counter:
    return _once(registry, "cache_errors", lambda r: Counter(
        "cache_errors", "Cache operations that raised (level down, timeout); a failed lookup "
        "also counts as a miss.", ["cache", "operation"], registry=r))


def gc_pause(registry: CollectorRegistry | None = None) -> Histogram:
    return _once(registry, "gc", lambda r: Histogram(
        "python_gc_pause_seconds", "Stop-the-world garbage collection pauses by generation.",
        ["generation"], buckets=GC_BUCKETS, registry=r))


def job_duration(registry: CollectorRegistry | None = None) -> Histogram:
    return _once(registry, "job_duration", lambda r: Histogram(
        "job_duration_seconds", "Background job run time.", ["job_name"],
        buckets=JOB_BUCKETS, registry=r))


def jobs_processed(registry: CollectorRegistry | None = None) -> Counter:
    return _once(registry, "jobs_processed", lambda r: Counter(
        "jobs_processed", "Background jobs finished, by result (success/error).",
        ["job_name", "result"], registry=r))


def job_queue_depth(registry: CollectorRegistry | None = None) -> Gauge:
    return _once(registry, "job_queue_depth", lambda r: Gauge(
        "job_queue_depth", "Jobs waiting in the queue.", ["job_name"],
        multiprocess_mode="livemax", registry=r))


_worker: dict[str, Any] = {}


def worker_gauge(name: str, documentation: str, labels: tuple[str, ...] = (),
                 mode: str = "livesum") -> Gauge:
    """A multiprocess-mode gauge written by this worker and summed (``livesum``) or otherwise
    combined over live workers when scraped. Not registered anywhere: in multiprocess mode
    values live in the worker's files, and the served registry reads those files."""
    with _lock:
        if name not in _worker:
            _worker[name] = Gauge(name, documentation, list(labels), registry=None,
                                  multiprocess_mode=mode)
        return _worker[name]


def worker_counter(name: str, documentation: str, labels: tuple[str, ...] = ()) -> Counter:
    """A multiprocess-mode counter of this worker (summed over all workers, dead ones too)."""
    with _lock:
        if name not in _worker:
            _worker[name] = Counter(name, documentation, list(labels), registry=None)
        return _worker[name]
