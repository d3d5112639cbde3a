"""Sample WSGI app (no framework) instrumented with watchkeeper_exporters.

Single process:   python wsgi_app.py PORT
Several workers:  PROMETHEUS_MULTIPROC_DIR=$(mktemp -d) gunicorn -c gunicorn.conf.py wsgi_app:app
"""

from __future__ import annotations

import json
import sys
from wsgiref.simple_server import make_server

from watchkeeper_exporters import (
    JobMetrics,
    PrometheusWSGIMiddleware,
    RouteMatcher,
    counted_lru_cache,
    install_runtime_metrics,
    metrics_wsgi_app,
)
from watchkeeper_exporters.http import ROUTE_KEY

ROUTES = RouteMatcher(["/fib/{n}", "/jobs/run", "/health", "/metrics"])
metrics = metrics_wsgi_app()            # aggregates workers when PROMETHEUS_MULTIPROC_DIR is set
cleanup = JobMetrics("cleanup")
install_runtime_metrics()               # threads, GC pauses, process_* (also per worker)


@counted_lru_cache("fib", maxsize=256)  # cache_hits_total / cache_misses_total{cache="fib"}
def fib(n: int) -> int:
    return n if n < 2 else fib(n - 1) + fib(n - 2)


def _respond(start_response, status: str, body: bytes, kind: str = "text/plain"):
    start_response(status, [("Content-Type", kind), ("Content-Length", str(len(body)))])
    return [body]


def _app(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    template = ROUTES.match(path)
    environ[ROUTE_KEY] = template       # tells the middleware which route matched
    if template == "/metrics":
        return metrics(environ, start_response)
    if template == "/fib/{n}":
        value = fib(int(path.rsplit("/", 1)[1]))
        return _respond(start_response, "200 OK", json.dumps({"fib": value}).encode(),
                        "application/json")
    if template == "/jobs/run":
        with cleanup.track():
            pass
        return _respond(start_response, "200 OK", b"done\n")
    if template == "/health":
        return _respond(start_response, "200 OK", b"ok\n")
    return _respond(start_response, "404 Not Found", b"not found\n")


app = PrometheusWSGIMiddleware(_app)    # http_request_duration_seconds


if __name__ == "__main__":
    make_server("127.0.0.1", int(sys.argv[1]), app).serve_forever()
