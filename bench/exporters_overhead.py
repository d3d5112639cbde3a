"""Per-call cost of the HTTP middleware and the cache hit counter, in ns, side by side.

Compares, in one run and interleaved rounds (so machine noise hits every variant alike):
  * an ASGI app called bare vs wrapped in PrometheusASGIMiddleware (and the same for WSGI);
  * a bare prometheus-client ``Histogram.observe`` on a labelled child, and
    ``Histogram.labels(...).observe`` (what hand-written instrumentation does per request);
  * ``dict.get`` vs ``CountedCache.get`` (a hit) vs a bare ``Counter.inc``.
Reports medians over rounds. Usage: python bench/exporters_overhead.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
from collections.abc import Callable
from time import perf_counter_ns
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from watchkeeper_exporters._metrics import HTTP_BUCKETS
from watchkeeper_exporters.cache import CountedCache
from watchkeeper_exporters.http import PrometheusASGIMiddleware, PrometheusWSGIMiddleware

N = 20_000
SCOPE = {"type": "http", "method": "GET", "path": "/items/1", "watchkeeper.route": "/items/{id}"}
START = {"type": "http.response.start", "status": 200, "headers": []}
BODY = {"type": "http.response.body", "body": b"ok"}


async def asgi_app(scope: Any, receive: Any, send: Any) -> None:
    await send(START)
    await send(BODY)


async def _send(message: Any) -> None:
    return None


def wsgi_app(environ: Any, start_response: Any) -> list[bytes]:
    start_response("200 OK", [])
    return [b"ok"]


def time_asgi(app: Any) -> float:
    async def loop() -> int:
        start = perf_counter_ns()
        for _ in range(N):
            await app(SCOPE, None, _send)
        return perf_counter_ns() - start

    return asyncio.run(loop()) / N


def time_wsgi(app: Any) -> float:
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/items/1",
               "watchkeeper.route": "/items/{id}"}

    def start_response(*args: Any) -> None:
        return None

    start = perf_counter_ns()
    for _ in range(N):
        body = app(environ, start_response)
        for _chunk in body:
            pass
        close = getattr(body, "close", None)
        if close:
            close()
    return (perf_counter_ns() - start) / N


def time_call(fn: Callable[[], Any]) -> float:
    start = perf_counter_ns()
    for _ in range(N):
        fn()
    return (perf_counter_ns() - start) / N


def variants() -> dict[str, Callable[[], float]]:
    registry = CollectorRegistry()
    histogram = Histogram("bench_seconds", "b", ["method", "route", "code"],
                          buckets=HTTP_BUCKETS, registry=registry)
    child = histogram.labels("GET", "/items/{id}", "200")
    counter = Counter("bench_hits", "b", ["cache"], registry=registry).labels("c")
    asgi = PrometheusASGIMiddleware(asgi_app, registry=registry)
    wsgi = PrometheusWSGIMiddleware(wsgi_app, registry=registry)
    plain = {"k": 1}
    counted = CountedCache({"k": 1}, "bench", registry=registry)
    return {
        "asgi_bare": lambda: time_asgi(asgi_app),
        "asgi_middleware": lambda: time_asgi(asgi),
        "wsgi_bare": lambda: time_wsgi(wsgi_app),
        "wsgi_middleware": lambda: time_wsgi(wsgi),
        "histogram_observe": lambda: time_call(lambda: child.observe(0.01)),
        "histogram_labels_observe": lambda: time_call(
            lambda: histogram.labels("GET", "/items/{id}", "200").observe(0.01)),
        "empty_call": lambda: time_call(lambda: None),
        "dict_get": lambda: time_call(lambda: plain.get("k")),
        "counted_cache_get": lambda: time_call(lambda: counted.get("k")),
        "counter_inc": lambda: time_call(counter.inc),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    rounds = parser.parse_args().rounds
    runs = variants()
    results: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            results[name].append(run())
    med = {name: statistics.median(values) for name, values in results.items()}
    loop = med["empty_call"]  # the timing loop's own cost, removed from call-style variants
    observe = med["histogram_observe"] - loop
    rows = [
        ("bare Histogram.observe (labelled child)", observe),
        ("Histogram.labels(...).observe", med["histogram_labels_observe"] - loop),
        ("ASGI middleware overhead", med["asgi_middleware"] - med["asgi_bare"]),
        ("WSGI middleware overhead", med["wsgi_middleware"] - med["wsgi_bare"]),
        ("bare Counter.inc", med["counter_inc"] - loop),
        ("CountedCache.get hit overhead vs dict.get",
         med["counted_cache_get"] - med["dict_get"]),
    ]
    print(f"{'measure':45} {'ns/call':>9} {'x observe':>10}")
    for label, ns in rows:
        print(f"{label:45} {ns:9.0f} {ns / observe:10.2f}")
    print(f"(medians of {rounds} rounds x {N} calls; bare ASGI app {med['asgi_bare']:.0f} ns, "
          f"bare WSGI app {med['wsgi_bare']:.0f} ns per request)")


if __name__ == "__main__":
    main()
