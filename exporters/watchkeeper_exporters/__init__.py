"""Exporters for watchkeeper: in-process instrumentation and a sidecar exporter.

Every metric name emitted here is read by the generator's ``python`` profile; see
``docs/exporters.md`` for the full list and the few lines that instrument an app.
"""

from .cache import CacheAside, CountedCache, MappingLevel, RedisLevel, counted_lru_cache
from .db import instrument_engine
from .exposition import (
    child_exit,
    metrics_asgi_app,
    metrics_registry,
    metrics_wsgi_app,
    serve_metrics,
)
from .http import (
    PrometheusASGIMiddleware,
    PrometheusWSGIMiddleware,
    RouteMatcher,
    instrument_flask,
)
from .jobs import JobMetrics
from .runtime import install_runtime_metrics, watch_running_loop

__all__ = [
    "CacheAside",
    "CountedCache",
    "JobMetrics",
    "MappingLevel",
    "PrometheusASGIMiddleware",
    "PrometheusWSGIMiddleware",
    "RedisLevel",
    "RouteMatcher",
    "child_exit",
    "counted_lru_cache",
    "install_runtime_metrics",
    "instrument_engine",
    "instrument_flask",
    "metrics_asgi_app",
    "metrics_registry",
    "metrics_wsgi_app",
    "serve_metrics",
    "watch_running_loop",
]
