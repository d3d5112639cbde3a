"""Background-job metrics: ``job_duration_seconds``, ``jobs_processed_total``, ``job_queue_depth``.

The job label is ``job_name``, not ``job``: Prometheus owns the target label ``job`` and renames
a scraped ``job`` label to ``exported_job`` (unless ``honor_labels``), which would silently
break every rule that selects it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from time import perf_counter
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry

from . import _metrics

F = TypeVar("F", bound=Callable[..., Any])


class JobMetrics:
    """Metrics of one kind of background job (one ``job_name`` value)."""

    def __init__(self, job_name: str, *, registry: CollectorRegistry | None = None) -> None:
        self.job_name = job_name
        self._duration = _metrics.job_duration(registry).labels(job_name)
        processed = _metrics.jobs_processed(registry)
        self._success = processed.labels(job_name, "success")
        self._error = processed.labels(job_name, "error")
        self._depth = _metrics.job_queue_depth(registry).labels(job_name)

    @contextmanager
    def track(self) -> Iterator[None]:
        """Time the block; an exception counts as ``result="error"`` and propagates."""
        start = perf_counter()
        try:
            yield
        except BaseException:
            self._error.inc()
            raise
        else:
            self._success.inc()
        finally:
            self._duration.observe(perf_counter() - start)

    def __call__(self, fn: F) -> F:
        """Decorator form of :meth:`track`."""

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self.track():
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    def set_queue_depth(self, depth: int) -> None:
        self._depth.set(depth)

    def queue_depth_from(self, size: Callable[[], int]) -> None:
        """Read the depth at scrape time, e.g. ``queue.qsize`` (single-process mode only)."""
        self._depth.set_function(size)
