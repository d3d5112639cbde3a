"""Per-request cost of HTTP instrumentation for a Starlette app: watchkeeper vs its peers.

One route (`/items/{item_id}`, a plain-text response) served in-process, interleaved rounds
(so machine noise hits every variant alike), medians reported:
  * bare: the Starlette app, uninstrumented;
  * watchkeeper: PrometheusASGIMiddleware around it;
  * prometheus-fastapi-instrumentator: Instrumentator().instrument(app) (its default metrics);
  * starlette-exporter: app.add_middleware(PrometheusMiddleware);
  * opentelemetry: OpenTelemetryMiddleware with the SDK's PrometheusMetricReader
    (OTEL_SEMCONV_STABILITY_OPT_IN=http, the seconds histogram).
Each row: µs per request, overhead over bare, and the in-process throughput ratio
bare time / variant time (1.0 = free). Usage: python bench/exporters_peers.py [--rounds 9]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
from time import perf_counter_ns
from typing import Any

os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http")

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from watchkeeper_exporters import PrometheusASGIMiddleware

N = 3000


async def item(request: Any) -> PlainTextResponse:
    return PlainTextResponse("item")


def starlette() -> Starlette:
    return Starlette(routes=[Route("/items/{item_id}", item)])


def variants() -> dict[str, Any]:
    from opentelemetry import metrics
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
    from opentelemetry.sdk.metrics import MeterProvider
    from prometheus_fastapi_instrumentator import Instrumentator
    from starlette_exporter import PrometheusMiddleware

    metrics.set_meter_provider(MeterProvider(metric_readers=[PrometheusMetricReader()]))
    instrumentator = starlette()
    Instrumentator().instrument(instrumentator)
    exporter = starlette()
    exporter.add_middleware(PrometheusMiddleware)
    return {
        "bare": starlette(),
        "watchkeeper": PrometheusASGIMiddleware(starlette(), registry=CollectorRegistry()),
        "prometheus-fastapi-instrumentator": instrumentator,
        "starlette-exporter": exporter,
        "opentelemetry": OpenTelemetryMiddleware(starlette()),
    }


async def time_app(app: Any) -> float:
    """ns per request through ``app``."""
    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        return None

    def scope(i: int) -> dict[str, Any]:
        path = f"/items/{i % 50}"
        return {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                "method": "GET", "path": path, "raw_path": path.encode(), "root_path": "",
                "scheme": "http", "query_string": b"", "headers": [(b"host", b"bench")],
                "server": ("bench", 80), "client": ("127.0.0.1", 1)}

    scopes = [scope(i) for i in range(N)]
    start = perf_counter_ns()
    for s in scopes:
        await app(s, receive, send)
    return (perf_counter_ns() - start) / N


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=9)
    rounds = parser.parse_args().rounds
    apps = variants()
    results: dict[str, list[float]] = {name: [] for name in apps}

    async def run() -> None:
        for app in apps.values():  # warm up: routes compiled, label children created
            await time_app(app)
        for _ in range(rounds):
            for name, app in apps.items():
                results[name].append(await time_app(app))

    asyncio.run(run())
    med = {name: statistics.median(values) for name, values in results.items()}
    bare = med["bare"]
    print(f"{'variant':36} {'us/request':>10} {'overhead us':>12} {'throughput':>11}")
    for name, ns in med.items():
        print(f"{name:36} {ns / 1000:10.1f} {(ns - bare) / 1000:12.1f} {bare / ns:10.2f}x")
    print(f"(medians of {rounds} interleaved rounds x {N} requests, in-process, one event loop)")


if __name__ == "__main__":
    main()
