"""ASGI and WSGI middleware recording ``http_request_duration_seconds{method,route,code}``.

``route`` is always a route *template* (``/items/{id}``), never the raw path: raw paths carry
IDs and would explode label cardinality. Requests no route matched collapse to ``<unmatched>``
and, past ``max_routes`` distinct templates, further templates collapse to ``<other>``.
Exceptions raised by the application are recorded as ``code="500"`` and re-raised.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
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


#: How a request is recorded without ``Histogram.observe``'s per-call checks and bucket loop:
#: ``(bucket increments, upper bounds, sum increment)`` of one child; the bucket is found with
#: one C-level ``bisect``. The values are prometheus-client's own (locked, multiprocess-aware).
Fast = tuple[list[Callable[[float], None]], Sequence[float], Callable[[float], None]]


def _fast(child: Any) -> Fast:
    """The fast observer of a histogram child; falls back to ``observe`` if prometheus-client's
    internals ever change shape."""
    try:
        incs = [bucket.inc for bucket in child._buckets]
        bounds = tuple(child._upper_bounds)
        total = child._sum.inc
    except AttributeError:
        return [lambda one: None], (float("inf"),), child.observe
    if len(incs) != len(bounds) or bounds[-1] != float("inf"):
        return [lambda one: None], (float("inf"),), child.observe
    return incs, bounds, total


class _Recorder:
    """Caches per (method, route, code) the child's fast observer and caps distinct routes.

    ``Histogram.labels`` costs more than ``observe``, and ``observe`` itself checks and loops
    over buckets in Python: the middleware does a dict lookup, one ``bisect`` and two locked
    increments per request (see bench/exporters_overhead.py).
    """

    def __init__(self, histogram: Histogram, max_routes: int) -> None:
        self._histogram = histogram
        self._max_routes = max_routes
        self._routes: set[str] = set()
        self.children: dict[tuple[str, str, str], Fast] = {}

    def observe(self, method: str, route: str, code: str, seconds: float) -> None:
        key = (method, route, code)
        fast = self.children.get(key)
        if fast is None:
            fast = self.child(key)
        incs, bounds, total = fast
        incs[bisect_left(bounds, seconds)](1)
        total(seconds)

    def child(self, key: tuple[str, str, str]) -> Fast:
        """The fast observer for ``key`` after normalising method and capping routes."""
        method, route, code = key
        if method not in METHODS:
            method = "OTHER"
        if route not in self._routes:
            if len(self._routes) >= self._max_routes:
                route = OVERFLOW
            else:
                self._routes.add(route)
        fast = _fast(self._histogram.labels(method, route, code))
        if len(self.children) < _CHILD_CACHE_LIMIT:
            self.children[key] = fast
        return fast


def _find_routes(app: Any) -> list[Any] | None:
    """The route list of the Starlette/FastAPI app under ``app`` (through wrapping
    middleware's ``.app``), or None for other frameworks."""
    for _ in range(16):
        routes = getattr(app, "routes", None)
        if isinstance(routes, list):
            return routes
        app = getattr(app, "app", None)
        if app is None:
            return None
    return None


def walk_template(routes: list[Any], scope: Mapping[str, Any]) -> str | None:
    """The full template of the route a Starlette-style router picks for ``scope``, with the
    templates of the mounts on the way (``/v2`` + ``/users/{uid}``); a mount without routes of
    its own (``StaticFiles``) gives ``<mount>/{path}``."""
    partial = None
    for route in routes:
        try:
            match, child = route.matches(scope)
        except Exception:  # a route type that cannot match this scope
            continue
        kind = getattr(match, "name", "")
        if kind == "FULL":
            return _joined_template(route, {**scope, **child})
        if kind == "PARTIAL" and partial is None:  # e.g. the path matches, the method not
            partial = (route, child)
    return _joined_template(partial[0], {**scope, **partial[1]}) if partial else None


def _joined_template(route: Any, scope: Mapping[str, Any]) -> str:
    template = getattr(route, "path_format", "") or ""
    inner_routes = getattr(route, "routes", None)
    if inner_routes is None:  # a route, not a mount
        return template
    inner = walk_template(inner_routes, scope) if inner_routes else None
    if inner is None:
        return template  # Starlette's Mount template ends in /{path}
    return template.removesuffix("/{path}") + inner


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
    then the route Starlette/FastAPI matched (``scope["route"]``, when no mount changed
    ``root_path``), then the app's routes walked again with the mounts' templates as prefixes
    (mounted sub-apps, ``StaticFiles``, FastAPI's ``add_route``), then ``routes`` templates,
    else ``<unmatched>``.
    """

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        # Kept flat on purpose: this runs on every request (see bench/exporters_overhead.py).
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 0

        def send_status(message: dict[str, Any]) -> Any:
            # A plain function returning send's awaitable: no extra coroutine per message. The
            # first message is the response start; later ones have no status.
            nonlocal status
            if not status:
                status = message.get("status", 0)
            return send(message)

        start = perf_counter()
        try:
            await self.app(scope, receive, send_status)
        except BaseException:
            self._recorder.observe(scope["method"], self._route(scope), "500",
                                   perf_counter() - start)
            raise
        elapsed = perf_counter() - start
        key = (scope["method"], (None if self._resolver else scope.get(ROUTE_KEY))
               or self._route(scope), _CODES.get(status) or "500")
        fast = self._children.get(key)
        if fast is None:
            fast = self._recorder.child(key)
        incs, bounds, total = fast
        incs[bisect_left(bounds, elapsed)](1)
        total(elapsed)

    def _route(self, scope: Mapping[str, Any]) -> str:
        route = self._resolver(scope) if self._resolver is not None else None
        route = route or scope.get(ROUTE_KEY)
        if route:
            return route
        matched = scope.get("route")
        # Starlette's Mount records the root path it started from as app_root_path: without
        # it no mount was passed and the matched route's template is the whole template.
        if matched is not None and "app_root_path" not in scope:
            route = getattr(matched, "path_format", None)
            if route:
                return route
        routes = _find_routes(self.app)
        if routes is not None:
            root = scope.get("app_root_path", scope.get("root_path", ""))
            route = walk_template(routes, {**scope, "root_path": root})
        return route or self._matcher.match(scope["path"]) or UNMATCHED


class PrometheusWSGIMiddleware(_Middleware):
    """WSGI middleware; the request ends when the server closes the response body.

    Route resolution order: ``route_resolver(environ)``, then ``environ["watchkeeper.route"]``
    (set by the app or a framework hook; :func:`instrument_flask` does it for Flask), then
    ``routes`` templates, else ``<unmatched>``.
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
            elapsed = perf_counter() - start  # _record inlined: this is the common path
            key = (environ.get("REQUEST_METHOD", "GET"),
                   (None if self._resolver else environ.get(ROUTE_KEY))
                   or self._route(environ), status or "500")
            fast = self._children.get(key)
            if fast is None:
                fast = self._recorder.child(key)
            incs, bounds, total = fast
            incs[bisect_left(bounds, elapsed)](1)
            total(elapsed)
            return body
        return _Body(body, lambda failed: self._record(
            environ, "500" if failed or not status else status, start))

    def _record(self, environ: Mapping[str, Any], code: str, start: float) -> None:
        elapsed = perf_counter() - start
        route = None if self._resolver else environ.get(ROUTE_KEY)
        key = (environ.get("REQUEST_METHOD", "GET"), route or self._route(environ), code)
        fast = self._children.get(key)
        if fast is None:
            fast = self._recorder.child(key)
        incs, bounds, total = fast
        incs[bisect_left(bounds, elapsed)](1)
        total(elapsed)

    def _route(self, environ: Mapping[str, Any]) -> str:
        route = self._resolver(environ) if self._resolver else None
        route = route or environ.get(ROUTE_KEY)
        return route or self._matcher.match(environ.get("PATH_INFO", "")) or UNMATCHED


def instrument_flask(app: Any, **middleware: Any) -> Any:
    """Wrap a Flask app's ``wsgi_app`` in :class:`PrometheusWSGIMiddleware` and label each
    request with the rule Flask matched (``/items/<int:item_id>``); returns the app.

    The rule is stored by a URL value preprocessor, which Flask runs for every routed request
    before any ``before_request`` hook (so an auth hook answering 401 keeps the label).
    """
    from flask import request

    def remember_rule(endpoint: str | None, values: Any) -> None:
        rule = request.url_rule
        if rule is not None:
            request.environ[ROUTE_KEY] = rule.rule

    app.url_value_preprocessor(remember_rule)
    app.wsgi_app = PrometheusWSGIMiddleware(app.wsgi_app, **middleware)
    return app


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
