"""Cache counters: ``cache_hits_total{cache}``, ``cache_misses_total{cache}`` and
``cache_errors_total{cache,operation}``.

Counters, not a hit-rate gauge: rates of counters aggregate across instances and windows, a
ratio gauge does not. Each cache level (L1 in-process, L2 Redis) is its own ``cache`` value.
"""

from __future__ import annotations

import functools
import inspect
import json
import threading
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from typing import Any, Protocol, TypeVar

from prometheus_client import CollectorRegistry

from . import _metrics, _sync

F = TypeVar("F", bound=Callable[..., Any])
_MISSING: Any = object()


class CacheCounters:
    """The hit, miss and error counter children of one ``cache`` label value."""

    def __init__(self, cache: str, registry: CollectorRegistry | None = None) -> None:
        self.cache = cache
        self.hit = _metrics.cache_hits(registry).labels(cache).inc
        self.miss = _metrics.cache_misses(registry).labels(cache).inc
        errors = _metrics.cache_errors(registry)
        self.get_error = errors.labels(cache, "get").inc
        self.set_error = errors.labels(cache, "set").inc


class _LruStats:
    """Copies an ``lru_cache``'s own exact hit/miss totals into the counters, off the call
    path (see ``_sync``); ``cache_clear`` resets those totals, so they are copied first."""

    def __init__(self, cached: Any, counters: CacheCounters) -> None:
        self._cached = cached
        self._clear = cached.cache_clear
        self._counters = counters
        self._hits = self._misses = 0
        self._lock = threading.Lock()

    def _copy(self) -> None:
        info = self._cached.cache_info()
        if info.hits > self._hits:
            self._counters.hit(info.hits - self._hits)
        if info.misses > self._misses:
            self._counters.miss(info.misses - self._misses)
        self._hits, self._misses = info.hits, info.misses

    def sync(self) -> None:
        with self._lock:
            self._copy()

    def cache_clear(self) -> None:
        with self._lock:
            self._copy()
            self._clear()
            self._hits = self._misses = 0


def counted_lru_cache(cache: str, maxsize: int | None = 128, *,
                      registry: CollectorRegistry | None = None) -> Callable[[F], F]:
    """``functools.lru_cache`` whose hits and misses are counted under ``cache``.

    The returned function *is* the ``lru_cache`` wrapper: no extra frame per call, so the same
    recursion depth and speed. Counts are ``lru_cache``'s own (exact under threads, every
    recursive call included), copied into the counters when scraped or, in multiprocess
    mode, by the worker's sync thread (at most ``WATCHKEEPER_SYNC_SECONDS`` late).
    """

    def decorate(fn: F) -> F:
        cached = functools.lru_cache(maxsize=maxsize)(fn)
        stats = _LruStats(cached, CacheCounters(cache, registry))
        _sync.add_hook(registry, stats.sync)
        cached.cache_clear = stats.cache_clear  # type: ignore[attr-defined]
        return cached  # type: ignore[return-value]

    return decorate


class CountedCache(MutableMapping[Any, Any]):
    """Wraps a dict or a cachetools cache and counts ``[key]`` / ``get`` lookups.

    Pass it wherever the cache was used, e.g. ``cachetools.cached(CountedCache(TTLCache(...),
    "l1"))``; membership tests (``in``) are not counted because they are not lookups.
    """

    def __init__(self, inner: MutableMapping[Any, Any], cache: str, *,
                 registry: CollectorRegistry | None = None) -> None:
        self.inner = inner
        self._counters = CacheCounters(cache, registry)

    def __getitem__(self, key: Any) -> Any:
        try:
            value = self.inner[key]
        except KeyError:
            self._counters.miss()
            raise
        self._counters.hit()
        return value

    def get(self, key: Any, default: Any = None) -> Any:
        value = self.inner.get(key, _MISSING)
        if value is _MISSING:
            self._counters.miss()
            return default
        self._counters.hit()
        return value

    def __setitem__(self, key: Any, value: Any) -> None:
        self.inner[key] = value

    def __delitem__(self, key: Any) -> None:
        del self.inner[key]

    def __contains__(self, key: object) -> bool:
        return key in self.inner

    def __iter__(self) -> Iterator[Any]:
        return iter(self.inner)

    def __len__(self) -> int:
        return len(self.inner)


class CacheLevel(Protocol):
    """One level of a tiered cache: ``get`` returns ``MISSING`` on a miss and raises when the
    level is unreachable; async levels (``is_async``) offer ``aget``/``aset`` instead."""

    def get(self, key: str) -> Any: ...

    def set(self, key: str, value: Any) -> None: ...


MISSING = _MISSING


class MappingLevel:
    """An in-process level (dict, cachetools cache) with hit/miss counting."""

    is_async = False

    def __init__(self, mapping: MutableMapping[Any, Any], cache: str, *,
                 registry: CollectorRegistry | None = None) -> None:
        self._cache = CountedCache(mapping, cache, registry=registry)
        self.counters = self._cache._counters

    def get(self, key: str) -> Any:
        return self._cache.get(key, MISSING)

    def set(self, key: str, value: Any) -> None:
        self._cache[key] = value


def _is_async_client(client: Any) -> bool:
    """A ``redis.asyncio`` client (or any client whose ``execute_command`` is a coroutine)."""
    return inspect.iscoroutinefunction(getattr(client, "execute_command", None))


class RedisLevel:
    """A Redis level storing JSON-encoded values with an optional TTL.

    Takes a redis-py client, sync (``redis.Redis``: use ``CacheAside.get_or_load``) or
    ``redis.asyncio.Redis`` (use ``await CacheAside.aget_or_load``).
    """

    def __init__(self, client: Any, cache: str = "redis", *, ttl_seconds: int | None = None,
                 prefix: str = "", dumps: Callable[[Any], str | bytes] = json.dumps,
                 loads: Callable[[Any], Any] = json.loads,
                 registry: CollectorRegistry | None = None) -> None:
        self._client = client
        self._ttl = ttl_seconds
        self._prefix = prefix
        self._dumps, self._loads = dumps, loads
        self.counters = CacheCounters(cache, registry)
        self.is_async = _is_async_client(client)

    def _found(self, raw: Any) -> Any:
        if raw is None:
            self.counters.miss()
            return MISSING
        self.counters.hit()
        return self._loads(raw)

    def get(self, key: str) -> Any:
        if self.is_async:
            raise TypeError(f"cache {self.counters.cache!r} has a redis.asyncio client: "
                            "use `await CacheAside(...).aget_or_load(key, loader)`")
        return self._found(self._client.get(self._prefix + key))

    def set(self, key: str, value: Any) -> None:
        self._client.set(self._prefix + key, self._dumps(value), ex=self._ttl)

    async def aget(self, key: str) -> Any:
        raw = self._client.get(self._prefix + key)
        return self._found(await raw if inspect.isawaitable(raw) else raw)

    async def aset(self, key: str, value: Any) -> None:
        done = self._client.set(self._prefix + key, self._dumps(value), ex=self._ttl)
        if inspect.isawaitable(done):
            await done


class CacheAside:
    """Cache-aside over one or more levels, fastest first (the seeds' L1 → L2 → loader).

    A hit on a slower level back-fills the faster ones; a full miss calls the loader and fills
    every level. A level that raises (Redis down, timeout) is skipped: the lookup counts as a
    miss of that level and as ``cache_errors_total{cache,operation="get"}``, so the outage
    shows in the hit ratio and in its own series, and the request is answered by the next
    level or the loader. A failed back-fill counts ``operation="set"`` and is ignored. The
    loader's own exceptions propagate.
    """

    def __init__(self, levels: Sequence[CacheLevel]) -> None:
        self.levels = list(levels)

    def get_or_load(self, key: str, loader: Callable[[], Any]) -> Any:
        for depth, level in enumerate(self.levels):
            value = self._get(level, key)
            if value is not MISSING:
                self._fill(self.levels[:depth], key, value)
                return value
        value = loader()
        self._fill(self.levels, key, value)
        return value

    async def aget_or_load(self, key: str, loader: Callable[[], Any]) -> Any:
        """Async form: awaits async levels and an async loader (a plain loader is called)."""
        for depth, level in enumerate(self.levels):
            value = await self._aget(level, key)
            if value is not MISSING:
                await self._afill(self.levels[:depth], key, value)
                return value
        value = loader()
        if inspect.isawaitable(value):
            value = await value
        await self._afill(self.levels, key, value)
        return value

    @staticmethod
    def _get(level: Any, key: str) -> Any:
        try:
            return level.get(key)
        except TypeError:
            raise
        except Exception:
            _level_failed(level, "get")
            return MISSING

    @staticmethod
    async def _aget(level: Any, key: str) -> Any:
        try:
            return await level.aget(key) if hasattr(level, "aget") else level.get(key)
        except Exception:
            _level_failed(level, "get")
            return MISSING

    @staticmethod
    def _fill(levels: Sequence[Any], key: str, value: Any) -> None:
        for level in levels:
            try:
                level.set(key, value)
            except Exception:
                _level_failed(level, "set")

    @staticmethod
    async def _afill(levels: Sequence[Any], key: str, value: Any) -> None:
        for level in levels:
            try:
                if hasattr(level, "aset"):
                    await level.aset(key, value)
                else:
                    level.set(key, value)
            except Exception:
                _level_failed(level, "set")


def _level_failed(level: Any, operation: str) -> None:
    """Count a failed level operation; a failed lookup is also a miss of that level."""
    counters = getattr(level, "counters", None)
    if counters is None:
        return
    if operation == "get":
        counters.get_error()
        counters.miss()
    else:
        counters.set_error()
