"""SQLAlchemy integration: query latency and connection-pool metrics.

* ``db_query_duration_seconds{operation,table,result}`` from ``before/after_cursor_execute``
  events; ``result="error"`` for statements that raised (``handle_error``).
* ``db_client_connection_count{pool,state}`` and ``db_client_connection_max{pool}`` read from
  the pool when scraped (exact, and free on the request path).
* ``db_client_connection_wait_time_seconds{pool}`` and ``db_client_connection_timeouts_total
  {pool}``: SQLAlchemy has no wait event, so the engine's checkout (``raw_connection``) is timed.
"""

from __future__ import annotations

import functools
import re
import weakref
from collections.abc import Iterator
from time import perf_counter
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from . import _metrics, _sync

_TIMER_KEY = "watchkeeper_query_start"
_COUNT_HELP = "Connections in the client pool by state."
_MAX_HELP = "Most connections the client pool may open."
_MAX_TABLES = 200
_TABLE_PATTERNS = {
    "SELECT": re.compile(r"\bFROM\s+([\"`\w.]+)", re.IGNORECASE),
    "DELETE": re.compile(r"\bFROM\s+([\"`\w.]+)", re.IGNORECASE),
    "INSERT": re.compile(r"\bINTO\s+([\"`\w.]+)", re.IGNORECASE),
    "UPDATE": re.compile(r"^\s*UPDATE\s+([\"`\w.]+)", re.IGNORECASE),
}
_KNOWN_OPERATIONS = frozenset({
    "SELECT", "INSERT", "UPDATE", "DELETE", "WITH", "BEGIN", "COMMIT", "ROLLBACK", "CREATE",
    "DROP", "ALTER", "TRUNCATE", "SET", "SHOW", "SAVEPOINT", "RELEASE", "COPY", "CALL",
    "EXPLAIN", "VACUUM", "ANALYZE", "MERGE", "LOCK", "PRAGMA",
})


@functools.lru_cache(maxsize=2048)
def classify(statement: str) -> tuple[str, str]:
    """``(operation, table)`` of a SQL statement, cheaply: first keyword and first table.

    Cached because SQLAlchemy reuses the same compiled statement strings. The table is ``""``
    when it cannot be found without parsing (joins count under their first table).
    """
    words = statement.lstrip(" \t\r\n(").split(None, 1)
    operation = words[0].upper() if words else ""
    if operation not in _KNOWN_OPERATIONS:
        return "OTHER", ""
    pattern = _TABLE_PATTERNS.get(operation)
    match = pattern.search(statement) if pattern else None
    table = match.group(1).strip('"`').lower() if match else ""
    return operation, table


class _QueryTimer:
    """Engine event handlers observing statement latency; bounds distinct table values."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        self._histogram = _metrics.db_query_duration(registry)
        self._tables: set[str] = set()

    def before(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        conn.info.setdefault(_TIMER_KEY, []).append(perf_counter())

    def after(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        starts = conn.info.get(_TIMER_KEY)
        if starts:
            self._observe(statement, perf_counter() - starts.pop(), "success")

    def error(self, context: Any) -> None:
        conn = context.connection
        starts = conn.info.get(_TIMER_KEY) if conn is not None else None
        if starts and context.statement:
            self._observe(context.statement, perf_counter() - starts.pop(), "error")

    def _observe(self, statement: str, seconds: float, result: str) -> None:
        operation, table = classify(statement)
        if table not in self._tables:
            if len(self._tables) >= _MAX_TABLES:
                table = "<other>"
            else:
                self._tables.add(table)
        self._histogram.labels(operation, table, result).observe(seconds)


class PoolCollector(Collector):
    """Reads used/idle/max of each instrumented engine's current pool at scrape time.

    ``QueuePool.overflow()`` starts at ``-pool_size``, so counts come from ``checkedout()`` and
    ``checkedin()`` instead; ``max`` is ``size + max_overflow`` (absent when unbounded).
    """

    def __init__(self) -> None:
        self._engines: dict[str, Any] = {}

    def add(self, pool_name: str, engine: Any) -> None:
        self._engines[pool_name] = engine

    def readings(self) -> Iterator[tuple[str, str | None, float]]:
        """``(pool, state, value)``; state ``None`` is the pool's maximum."""
        for name, engine in list(self._engines.items()):
            pool = engine.pool
            if hasattr(pool, "checkedout"):
                yield name, "used", pool.checkedout()
                yield name, "idle", pool.checkedin()
            limit = pool_max(pool)
            if limit is not None:
                yield name, None, limit

    def collect(self) -> Iterator[GaugeMetricFamily]:
        count = GaugeMetricFamily("db_client_connection_count", _COUNT_HELP,
                                  labels=["pool", "state"])
        maximum = GaugeMetricFamily("db_client_connection_max", _MAX_HELP, labels=["pool"])
        for name, state, value in self.readings():
            if state is None:
                maximum.add_metric([name], value)
            else:
                count.add_metric([name, state], value)
        yield count
        yield maximum

    def sync_worker(self) -> None:
        """Multiprocess mode: write this worker's pool readings (summed over live workers, so
        used/max is the utilisation of all workers' pools together)."""
        count = _metrics.worker_gauge("db_client_connection_count", _COUNT_HELP,
                                      ("pool", "state"))
        maximum = _metrics.worker_gauge("db_client_connection_max", _MAX_HELP, ("pool",))
        for name, state, value in self.readings():
            if state is None:
                maximum.labels(name).set(value)
            else:
                count.labels(name, state).set(value)


def pool_max(pool: Any) -> int | None:
    """``size + max_overflow`` of a QueuePool, ``None`` for unbounded or non-queue pools."""
    size = getattr(pool, "size", None)
    overflow = getattr(pool, "_max_overflow", None)
    if size is None or overflow is None or overflow < 0:
        return None
    return size() + overflow


#: engine -> {registry: pool name}, so a second instrument_engine cannot double-count.
_instrumented: weakref.WeakKeyDictionary[Any, dict[CollectorRegistry, str]] = (
    weakref.WeakKeyDictionary()
)
_pool_collectors: weakref.WeakKeyDictionary[CollectorRegistry, PoolCollector] = (
    weakref.WeakKeyDictionary()
)


def _pool_collector(registry: CollectorRegistry | None) -> PoolCollector:
    reg = REGISTRY if registry is None else registry
    collector = _pool_collectors.get(reg)
    if collector is None:
        collector = PoolCollector()
        if _sync.multiprocess_enabled():
            _sync.add_hook(reg, collector.sync_worker)
        else:
            reg.register(collector)
        _pool_collectors[reg] = collector
    return collector


def _timed_checkout(engine: Any, pool_name: str, registry: CollectorRegistry | None) -> None:
    """Wrap ``engine.raw_connection`` (every checkout goes through it, and it survives
    ``engine.dispose()``, which replaces the pool) to time waits and count timeouts."""
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    wait = _metrics.pool_wait(registry).labels(pool_name)
    timeouts = _metrics.pool_timeouts(registry).labels(pool_name)
    checkout = engine.raw_connection

    @functools.wraps(checkout)
    def raw_connection(*args: Any, **kwargs: Any) -> Any:
        start = perf_counter()
        try:
            return checkout(*args, **kwargs)
        except PoolTimeout:
            timeouts.inc()
            raise
        finally:
            wait.observe(perf_counter() - start)

    engine.raw_connection = raw_connection


def instrument_engine(engine: Any, pool: str = "default", *,
                      registry: CollectorRegistry | None = None) -> Any:
    """Instrument a SQLAlchemy ``Engine`` (or ``AsyncEngine``) and return it.

    ``pool`` names the ``pool`` label; give each engine its own name. Instrumenting the same
    engine again with the same registry and name does nothing (it would count every query
    twice); with another name it raises ``ValueError``.
    """
    from sqlalchemy import event

    sync_engine = getattr(engine, "sync_engine", engine)
    reg = REGISTRY if registry is None else registry
    done = _instrumented.setdefault(sync_engine, {})
    if reg in done:
        if done[reg] == pool:
            return engine
        raise ValueError(f"engine {sync_engine!r} is already instrumented as pool "
                         f"{done[reg]!r}; instrument it once (asked for pool {pool!r})")
    done[reg] = pool
    timer = _QueryTimer(registry)
    event.listen(sync_engine, "before_cursor_execute", timer.before)
    event.listen(sync_engine, "after_cursor_execute", timer.after)
    event.listen(sync_engine, "handle_error", timer.error)
    _timed_checkout(sync_engine, pool, registry)
    _pool_collector(registry).add(pool, sync_engine)
    return engine
