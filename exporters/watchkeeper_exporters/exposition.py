"""Serving ``/metrics``: mounted into the app or on its own port, single- or multi-process.

Under a pre-forking server (gunicorn with several workers) each worker has its own memory, so
metrics go through prometheus-client's multiprocess mode: set ``PROMETHEUS_MULTIPROC_DIR`` to an
empty directory before the workers start, serve :func:`metrics_registry` and call
:func:`child_exit` from gunicorn's ``child_exit`` hook.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    make_asgi_app,
    make_wsgi_app,
    multiprocess,
    start_http_server,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Lock file (not ``*.db``, so prometheus-client ignores it): scrapes share it, compaction of a
#: dead worker's files holds it alone, so no scrape sees a value twice or not at all.
LOCK_NAME = ".watchkeeper.lock"
#: File types whose samples are summed over dead workers too, so they can be merged.
_SUMMED_TYPES = ("counter", "histogram", "summary")


def multiprocess_enabled() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


def metrics_registry() -> CollectorRegistry:
    """The registry to serve: the default one, or a fresh multiprocess aggregate when
    ``PROMETHEUS_MULTIPROC_DIR`` is set (prometheus-client requires a fresh one per scrape
    to avoid exporting the serving worker's own samples twice)."""
    if not multiprocess_enabled():
        return REGISTRY
    registry = CollectorRegistry()
    _LockedMultiProcessCollector(registry)
    return registry


@contextlib.contextmanager
def _folder_lock(path: str, exclusive: bool) -> Iterator[None]:
    with open(os.path.join(path, LOCK_NAME), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class _LockedMultiProcessCollector(multiprocess.MultiProcessCollector):
    """Reads the workers' files while no dead worker's files are being merged."""

    def collect(self) -> Any:
        with _folder_lock(self._path, exclusive=False):
            return list(super().collect())


def compact_dead_worker(pid: int, path: str | None = None) -> None:
    """Merge a dead worker's counter/histogram files into one ``<type>_archive.db`` per type.

    Without it the folder gains files with every worker ever started (gunicorn's
    ``max_requests`` recycling) and each scrape reads them all. Sums are unchanged.
    """
    from prometheus_client.mmap_dict import MmapedDict

    folder = Path(path or os.environ[MULTIPROC_ENV])
    with _folder_lock(str(folder), exclusive=True):
        for typ in _SUMMED_TYPES:
            dead = folder / f"{typ}_{pid}.db"
            if not dead.exists():
                continue
            archive = folder / f"{typ}_archive.db"
            totals: dict[str, float] = defaultdict(float)
            for source in (archive, dead):
                if source.exists():
                    for key, value, _ts, _pos in MmapedDict.read_all_values_from_file(
                            str(source)):
                        totals[key] += value
            staging = folder / f"{typ}_archive.db.tmp"  # not *.db: scrapes never read it
            staging.unlink(missing_ok=True)
            merged = MmapedDict(str(staging))
            try:
                for key, value in totals.items():
                    merged.write_value(key, value, 0.0)
            finally:
                merged.close()
            os.replace(staging, archive)
            dead.unlink()


class _PerScrapeRegistry:
    """Builds the multiprocess aggregate per scrape (a registry-like object)."""

    def collect(self) -> Any:
        return metrics_registry().collect()

    def restricted_registry(self, names: Any) -> Any:
        return metrics_registry().restricted_registry(names)


def _serving_registry(registry: CollectorRegistry | None) -> Any:
    if registry is not None:
        return registry
    return _PerScrapeRegistry() if multiprocess_enabled() else REGISTRY


class _ASGIMetrics:
    """An ASGI callable object rather than a function, so that Starlette's
    ``Route("/metrics", metrics_asgi_app())`` serves it as an app (a ``Mount`` would redirect
    ``/metrics`` to ``/metrics/``)."""

    def __init__(self, app: Any) -> None:
        self._app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self._app(scope, receive, send)


def metrics_asgi_app(registry: CollectorRegistry | None = None) -> Any:
    """ASGI app serving the metrics; route ``/metrics`` to it."""
    return _ASGIMetrics(make_asgi_app(_serving_registry(registry)))


def metrics_wsgi_app(registry: CollectorRegistry | None = None) -> Any:
    """WSGI app serving the metrics; dispatch ``/metrics`` to it."""
    return make_wsgi_app(_serving_registry(registry))


def serve_metrics(port: int, addr: str = "127.0.0.1",
                  registry: CollectorRegistry | None = None) -> Any:
    """Serve the metrics on their own port from a background thread. Under a pre-fork server
    call it once (e.g. from gunicorn's ``when_ready`` hook in the master), not per worker: each
    worker would try to bind the port, and each serves the same merged view anyway."""
    return start_http_server(port, addr=addr, registry=_serving_registry(registry))


def child_exit(server: Any, worker: Any) -> None:
    """gunicorn ``child_exit`` hook: drop a dead worker's gauges (all ``live*`` modes) and merge
    its counters and histograms into the archive files."""
    if multiprocess_enabled():
        multiprocess.mark_process_dead(worker.pid)
        compact_dead_worker(worker.pid)
