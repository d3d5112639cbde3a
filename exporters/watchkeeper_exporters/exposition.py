"""Serving ``/metrics``: mounted into the app or on its own port, single- or multi-process.

Under a pre-forking server (gunicorn with several workers) each worker has its own memory, so
metrics go through prometheus-client's multiprocess mode: set ``PROMETHEUS_MULTIPROC_DIR`` to an
empty directory before the workers start, serve :func:`metrics_registry` and call
:func:`child_exit` from gunicorn's ``child_exit`` hook.
"""

from __future__ import annotations

import os
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


def multiprocess_enabled() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


def metrics_registry() -> CollectorRegistry:
    """The registry to serve: the default one, or a fresh multiprocess aggregate when
    ``PROMETHEUS_MULTIPROC_DIR`` is set (prometheus-client requires a fresh one per scrape
    to avoid exporting the serving worker's own samples twice)."""
    if not multiprocess_enabled():
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry


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
    """Serve the metrics on their own port from a background thread (not for pre-fork
    servers' workers: each would try to bind the port)."""
    return start_http_server(port, addr=addr, registry=_serving_registry(registry))


def child_exit(server: Any, worker: Any) -> None:
    """gunicorn ``child_exit`` hook: drop a dead worker's live gauges (``livesum``/``max``)."""
    if multiprocess_enabled():
        multiprocess.mark_process_dead(worker.pid)
