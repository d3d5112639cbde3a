"""ASGI and WSGI middleware recording ``http_request_duration_seconds{method,route,code}``.

``route`` is always a route *template* (``/items/{id}``), never the raw path: raw paths carry
IDs and would explode label cardinality. Requests no route matched collapse to ``<unmatched>``
and, past ``max_routes`` distinct templates, further templates collapse to ``<other>``.
Exceptions raised by the application are recorded as ``code="500"`` and re-raised.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from time import perf_counter
from typing import Any

from prometheus_client import CollectorRegistry, Histogram

from . import _metrics

UNMATCHED = "<unmatched>"
OVERFLOW = "<other>"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT",
                     "TRACE"})
#: Environ/scope key an application may set to the matched template (any framework).
ROUTE_KEY = "watchkeeper.route"
_CHILD_CACHE_LIMIT = 4096
_CODES = {code: str(code) for code in range(100, 600)}


class RouteMatcher:
    """Maps a request path to one of the given templates (``/items/{id}``, ``/f/{p:path}``).

    For frameworks that do not expose the matched route: the app lists its templates once.
    """

    _param = re.compile(r"\{(\w+)(?::(\w+))?\}")

    def __init__(self, templates: Iterable[str]) -> None:
        self._compiled = [(self._compile(t), t) for t in templates]

    def _compile(self, template: str) -> re.Pattern[str]:
        out, pos = [], 0
        for m in self._param.finditer(template):
            out.append(re.escape(template[pos:m.start()]))
            out.append(".+" if m.group(2) == "path" else "[^/]+")
            pos = m.end()
        out.append(re.escape(template[pos:]))
        return re.compile("".join(out) + r"\Z")

    def match(self, path: str) -> str | None:
        for pattern, template in self._compiled:
            if pattern.match(path):
                return template
        return None


class _Recorder:
    """Caches histogram children per (method, route, code) and caps distinct routes.

    ``Histogram.labels`` costs more than ``observe``; caching children keeps the per-request
    cost close to a bare ``observe``.
    """

    def __init__(self, histogram: Histogram, max_routes: int) -> None:
        self._histogram = histogram
        self._max_routes = max_routes
        self._routes: set[str] = set()
        self.children: dict[tuple[str, str, str], Any] = {}

    def observe(self, method: str, route: str, code: str, seconds: float) -> None:
        key = (method, route, code)
        child = self.children.get(key)
        if child is None:
            child = self.child(key)
        child.observe(seconds)

    def child(self, key: tuple[str, str, str]) -> Any:
        """The histogram child for ``key`` after normalising method and capping routes."""
        method, route, code = key
        if method not in METHODS:
            method = "OTHER"
        if route not in self._routes:
            if len(self._routes) >= self._max_routes:
                route = OVERFLOW
            else:
                self._routes.add(route)
        child = self._histogram.labels(method, route, code)
        if len(self.children) < _CHILD_CACHE_LIMIT:
            self.children[key] = child
        return child


def _starlette_template(scope: Mapping[str, Any]) -> str | None:
    """Template of the route Starlette/FastAPI matched (they store it in ``scope["route"]``)."""
    route = scope.get("route")
    if route is None:
        return None
    return getattr(route, "path_format", None) or getattr(route, "path", None)


class _Middleware:
    """What both middlewares hold: the wrapped app, route resolution and the histogram."""

    def __init__(self, app: Any, *, routes: Iterable[str] = (),
                 route_resolver: Callable[[Mapping[str, Any]], str | None] | None = None,
                 max_routes: int = 200, registry: CollectorRegistry | None = None) -> None:
        self.app = app
        self._matcher = RouteMatcher(routes)
        self._resolver = route_resolver
        self._recorder = _Recorder(_metrics.http_duration(registry), max_routes)
        self._children = self._recorder.children


class PrometheusASGIMiddleware(_Middleware):
    """ASGI middleware; wrap the outermost app so errors from inner middleware count too.

    Route resolution order: ``route_resolver(scope)``, then ``scope["watchkeeper.route"]``,
    then the route Starlette/FastAPI matched, then ``routes`` templates, else ``<unmatched>``.
    """


    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        # Kept flat on purpose: this runs on every request (see bench/exporters_overhead.py).
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 0

        def send_status(message: dict[str, Any]) -> Any:
            # A plain function returning send's awaitable: no extra coroutine per message.
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            return send(message)

        start = perf_counter()
        try:
            await self.app(scope, receive, send_status)
        except BaseException:
            self._recorder.observe(scope["method"], self._route(scope), "500",
                                   perf_counter() - start)
            raise
        elapsed = perf_counter() - start
        route = None if self._resolver else scope.get(ROUTE_KEY)
        key = (scope["method"], route or self._route(scope), _CODES.get(status) or "500")
        child = self._children.get(key)
        if child is None:
            child = self._recorder.child(key)
        child.observe(elapsed)

    def _route(self, scope: Mapping[str, Any]) -> str:
        if self._resolver is None:
            route = scope.get(ROUTE_KEY) or _starlette_template(scope)
        else:
            route = self._resolver(scope) or scope.get(ROUTE_KEY) or _starlette_template(scope)
        return route or self._matcher.match(scope["path"]) or UNMATCHED


class PrometheusWSGIMiddleware(_Middleware):
    """WSGI middleware; the request ends when the server closes the response body.

    Route resolution order: ``route_resolver(environ)``, then ``environ["watchkeeper.route"]``
    (set by the app or a framework hook), then ``routes`` templates, else ``<unmatched>``.
    """


    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        start = perf_counter()
        status = ""

        def start_with_status(line: str, headers: Any, exc_info: Any = None) -> Any:
            nonlocal status
            status = line[:3]
            return start_response(line, headers, exc_info)

        try:
            body = self.app(environ, start_with_status)
        except BaseException:
            self._record(environ, "500", start)
            raise
        if type(body) is list:  # already complete: nothing left to time, no wrapper needed
            self._record(environ, status or "500", start)
            return body
        return _Body(body, lambda failed: self._record(
            environ, "500" if failed or not status else status, start))

    def _record(self, environ: Mapping[str, Any], code: str, start: float) -> None:
        elapsed = perf_counter() - start
        route = None if self._resolver else environ.get(ROUTE_KEY)
        key = (environ.get("REQUEST_METHOD", "GET"), route or self._route(environ), code)
        child = self._children.get(key)
        if child is None:
            child = self._recorder.child(key)
        child.observe(elapsed)

    def _route(self, environ: Mapping[str, Any]) -> str:
        route = self._resolver(environ) if self._resolver else None
        route = route or environ.get(ROUTE_KEY)
        return route or self._matcher.match(environ.get("PATH_INFO", "")) or UNMATCHED


class _Body:
    """Response body wrapper that records the request once, when the server closes it."""

    def __init__(self, body: Iterable[bytes], done: Callable[[bool], None]) -> None:
        self._body = body
        self._done = done
        self._failed = False

    def __iter__(self) -> Iterator[bytes]:
        try:
            yield from self._body
        except BaseException:
            self._failed = True
            raise

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._done(self._failed)
