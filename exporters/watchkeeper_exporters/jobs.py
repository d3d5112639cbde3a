"""Background-job metrics: ``job_duration_seconds``, ``jobs_processed_total``, ``job_queue_depth``.

The job label is ``job_name``, not ``job``: Prometheus owns the target label ``job`` and renames
a scraped ``job`` label to ``exported_job`` (unless ``honor_labels``), which would silently
break every rule that selects it.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from time import perf_counter
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry

from . import _metrics, _sync

F = TypeVar("F", bound=Callable[..., Any])


class JobMetrics:
    """Metrics of one kind of background job (one ``job_name`` value)."""

    def __init__(self, job_name: str, *, registry: CollectorRegistry | None = None) -> None:
        self.job_name = job_name
        self._registry = registry
        self._duration = _metrics.job_duration(registry).labels(job_name)
        processed = _metrics.jobs_processed(registry)
        self._success = processed.labels(job_name, "success")
        self._error = processed.labels(job_name, "error")
        self._depth = _metrics.job_queue_depth(registry).labels(job_name)

    def track(self) -> _Tracking:
        """Time the block, ``with job.track():`` or ``async with job.track():``; an exception
        counts as ``result="error"`` and propagates."""
        return _Tracking(self)

    def _finish(self, start: float, failed: bool) -> None:
        (self._error if failed else self._success).inc()
        self._duration.observe(perf_counter() - start)

    def __call__(self, fn: F) -> F:
        """Decorator form of :meth:`track`, for plain and ``async def`` functions (an
        ``async def`` is timed until its coroutine finishes, not until it is created)."""
        if inspect.iscoroutinefunction(fn):
            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                async with self.track():
                    return await fn(*args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self.track():
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    def set_queue_depth(self, depth: int) -> None:
        self._depth.set(depth)

    def queue_depth_from(self, size: Callable[[], int]) -> None:
        """Read the depth from ``size`` (e.g. ``queue.qsize``) at scrape time, or in
        multiprocess mode from the worker's sync thread."""
        if _sync.multiprocess_enabled():
            _sync.add_hook(self._registry, lambda: self._depth.set(size()))
        else:
            self._depth.set_function(size)


class _Tracking:
    """One run of a job: a sync and an async context manager."""

    __slots__ = ("_job", "_start")

    def __init__(self, job: JobMetrics) -> None:
        self._job = job
        self._start = 0.0

    def __enter__(self) -> None:
        self._start = perf_counter()

    def __exit__(self, kind: Any, error: Any, tb: Any) -> bool:
        self._job._finish(self._start, kind is not None)
        return False

    async def __aenter__(self) -> None:
        self._start = perf_counter()

    async def __aexit__(self, kind: Any, error: Any, tb: Any) -> bool:
        self._job._finish(self._start, kind is not None)
        return False
