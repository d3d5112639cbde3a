"""HTTP middleware: route templates, status codes, exceptions and the cardinality cap."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from metrics_text import value
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from watchkeeper_exporters.http import (
    OVERFLOW,
    UNMATCHED,
    PrometheusASGIMiddleware,
    PrometheusWSGIMiddleware,
    RouteMatcher,
)

COUNT = "http_request_duration_seconds_count"


def asgi_get(app: Any, path: str, method: str = "GET") -> int:
    """Drive an ASGI app for one request in-process; returns the response status."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": method, "path": path, "raw_path": path.encode(), "root_path": "",
             "scheme": "http", "query_string": b"", "headers": [], "server": ("t", 80),
             "client": ("c", 1)}
    asyncio.run(app(scope, receive, send))
    return next(m["status"] for m in sent if m["type"] == "http.response.start")


def asgi_get_streaming(app: Any, path: str) -> int:
    """Like :func:`asgi_get`, but ``receive`` waits after the request as a real server does
    (``StaticFiles`` listens for the disconnect)."""
    sent: list[dict[str, Any]] = []
    first = [True]

    async def receive() -> dict[str, Any]:
        if first.pop() if first else False:
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()
        return {}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "GET", "path": path, "raw_path": path.encode(), "root_path": "",
             "scheme": "http", "query_string": b"", "headers": [], "server": ("t", 80),
             "client": ("c", 1)}
    asyncio.run(app(scope, receive, send))
    return next(m["status"] for m in sent if m["type"] == "http.response.start")


def starlette_app() -> Starlette:
    async def item(request: Any) -> PlainTextResponse:
        return PlainTextResponse("item")

    async def fail(request: Any) -> PlainTextResponse:
        raise ValueError("boom")

    return Starlette(routes=[Route("/items/{item_id:int}", item), Route("/fail", fail)])


def test_asgi_records_route_template_not_raw_path() -> None:
    registry = CollectorRegistry()
    app = PrometheusASGIMiddleware(starlette_app(), registry=registry)
    assert asgi_get(app, "/items/17") == 200
    assert asgi_get(app, "/items/18") == 200
    assert value(registry, COUNT, method="GET", route="/items/{item_id}", code="200") == 2
    assert value(registry, COUNT, method="GET", route="/items/17", code="200") is None


def test_asgi_unmatched_paths_collapse_into_one_value() -> None:
    registry = CollectorRegistry()
    app = PrometheusASGIMiddleware(starlette_app(), registry=registry)
    for path in ("/a", "/b/c", "/items/not-a-number"):
        assert asgi_get(app, path) == 404
    assert value(registry, COUNT, method="GET", route=UNMATCHED, code="404") == 3


def test_asgi_exception_counts_as_500_and_propagates() -> None:
    registry = CollectorRegistry()
    app = PrometheusASGIMiddleware(starlette_app(), registry=registry)
    with pytest.raises(ValueError):
        asgi_get(app, "/fail")
    assert value(registry, COUNT, method="GET", route="/fail", code="500") == 1


def test_asgi_plain_app_uses_given_templates_and_caps_routes() -> None:
    async def plain(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    registry = CollectorRegistry()
    resolver_routes = iter(f"/r{i}" for i in range(10))
    app = PrometheusASGIMiddleware(plain, route_resolver=lambda s: next(resolver_routes),
                                   max_routes=3, registry=registry)
    for _ in range(10):
        asgi_get(app, "/whatever")
    assert value(registry, COUNT, method="GET", route="/r2", code="204") == 1
    assert value(registry, COUNT, method="GET", route=OVERFLOW, code="204") == 7

    registry = CollectorRegistry()
    app = PrometheusASGIMiddleware(plain, routes=["/users/{id}"], registry=registry)
    asgi_get(app, "/users/42", method="BREW")
    assert value(registry, COUNT, method="OTHER", route="/users/{id}", code="204") == 1


def test_route_matcher_templates() -> None:
    matcher = RouteMatcher(["/users/{id}", "/files/{p:path}", "/users/{id}/posts"])
    assert matcher.match("/users/1") == "/users/{id}"
    assert matcher.match("/users/1/posts") == "/users/{id}/posts"
    assert matcher.match("/files/a/b/c.txt") == "/files/{p:path}"
    assert matcher.match("/users/") is None


def wsgi_call(app: Any, path: str) -> tuple[str, bytes]:
    status: list[str] = []
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": path}
    body = app(environ, lambda s, h, e=None: status.append(s))
    try:
        data = b"".join(body)
    finally:
        body.close()
    return status[0], data


def test_wsgi_records_streamed_bodies_on_close_with_template_and_status() -> None:
    def inner(environ: Any, start_response: Any) -> Any:
        start_response("201 Created", [])
        yield b"ok"

    registry = CollectorRegistry()
    app = PrometheusWSGIMiddleware(inner, routes=["/orders/{id}"], registry=registry)
    body = app({"REQUEST_METHOD": "POST", "PATH_INFO": "/orders/9"}, lambda *a: None)
    assert value(registry, COUNT, method="POST", route="/orders/{id}", code="201") is None
    list(body)
    body.close()
    assert value(registry, COUNT, method="POST", route="/orders/{id}", code="201") == 1


def test_wsgi_list_bodies_are_recorded_at_once_and_returned_unwrapped() -> None:
    body = [b"done"]

    def inner(environ: Any, start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        return body

    registry = CollectorRegistry()
    app = PrometheusWSGIMiddleware(inner, routes=["/done"], registry=registry)
    assert app({"REQUEST_METHOD": "GET", "PATH_INFO": "/done"}, lambda *a: None) is body
    assert value(registry, COUNT, method="GET", route="/done", code="200") == 1


def test_wsgi_errors_before_and_during_the_body_count_as_500() -> None:
    def raises(environ: Any, start_response: Any) -> list[bytes]:
        raise RuntimeError("before")

    def raises_in_body(environ: Any, start_response: Any) -> Any:
        start_response("200 OK", [])
        environ["watchkeeper.route"] = "/stream"
        yield b"partial"
        raise RuntimeError("during")

    registry = CollectorRegistry()
    with pytest.raises(RuntimeError):
        PrometheusWSGIMiddleware(raises, registry=registry)(
            {"REQUEST_METHOD": "GET", "PATH_INFO": "/x"}, lambda *a: None)
    assert value(registry, COUNT, method="GET", route=UNMATCHED, code="500") == 1
    with pytest.raises(RuntimeError):
        wsgi_call(PrometheusWSGIMiddleware(raises_in_body, registry=registry), "/stream")
    assert value(registry, COUNT, method="GET", route="/stream", code="500") == 1


def test_fastapi_added_routes_mounts_and_static_files_get_full_templates(tmp_path) -> None:
    from fastapi import FastAPI
    from starlette.staticfiles import StaticFiles
    from watchkeeper_exporters import metrics_asgi_app

    registry = CollectorRegistry()
    (tmp_path / "app.css").write_text("body {}")
    api, sub = FastAPI(), FastAPI()

    @api.get("/items/{item_id}")
    async def item(item_id: int) -> dict[str, int]:
        return {"id": item_id}

    @sub.get("/users/{uid}")
    async def user(uid: int) -> dict[str, int]:
        return {"uid": uid}

    async def plain(request: Any) -> PlainTextResponse:
        return PlainTextResponse("plain")

    api.mount("/v2", sub)
    api.mount("/static", StaticFiles(directory=tmp_path))
    api.add_route("/plain", plain)
    api.add_route("/metrics", metrics_asgi_app(registry))
    app = PrometheusASGIMiddleware(api, registry=registry)
    for path in ("/items/3", "/v2/users/4", "/static/app.css", "/plain", "/metrics"):
        assert asgi_get_streaming(app, path) == 200, path
    assert asgi_get_streaming(app, "/nope") == 404
    for route in ("/items/{item_id}", "/v2/users/{uid}", "/static/{path}", "/plain",
                  "/metrics"):
        assert value(registry, COUNT, method="GET", route=route, code="200") == 1, route
    assert value(registry, COUNT, method="GET", route=UNMATCHED, code="404") == 1
    assert value(registry, COUNT, method="GET", route=UNMATCHED, code="200") is None


def test_fast_observer_lands_in_the_same_buckets_as_observe() -> None:
    """The middleware's bisect-based observer must give exactly Histogram.observe's buckets,
    including values on a bucket bound and past the last one."""
    from prometheus_client import Histogram, generate_latest
    from watchkeeper_exporters._metrics import HTTP_BUCKETS
    from watchkeeper_exporters.http import _Recorder

    ours, theirs = CollectorRegistry(), CollectorRegistry()
    recorder = _Recorder(Histogram("h", "h", ["method", "route", "code"], buckets=HTTP_BUCKETS,
                                   registry=ours), max_routes=10)
    reference = Histogram("h", "h", ["method", "route", "code"], buckets=HTTP_BUCKETS,
                          registry=theirs).labels("GET", "/r", "200")
    for seconds in (0.0, 0.004, 0.005, 0.0050001, 0.1, 0.99, 1.0, 9.9, 10.0, 11.0, 3600.0):
        recorder.observe("GET", "/r", "200", seconds)
        reference.observe(seconds)

    def lines(registry: CollectorRegistry) -> list[str]:
        return [line for line in generate_latest(registry).decode().splitlines()
                if not line.startswith("#") and "_created" not in line]

    assert lines(ours) == lines(theirs)
