"""Cache hit/miss counters: ``cache_hits_total{cache}`` and ``cache_misses_total{cache}``.

Counters, not a hit-rate gauge: rates of counters aggregate across instances and windows, a
ratio gauge does not. Each cache level (L1 in-process, L2 Redis) is its own ``cache`` value.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from typing import Any, Protocol, TypeVar

from prometheus_client import CollectorRegistry

from . import _metrics

F = TypeVar("F", bound=Callable[..., Any])
_MISSING: Any = object()


class CacheCounters:
    """The hit and miss counter children of one ``cache`` label value."""

    def __init__(self, cache: str, registry: CollectorRegistry | None = None) -> None:
        self.cache = cache
        self.hit = _metrics.cache_hits(registry).labels(cache).inc
        self.miss = _metrics.cache_misses(registry).labels(cache).inc


def counted_lru_cache(cache: str, maxsize: int | None = 128, *,
                      registry: CollectorRegistry | None = None) -> Callable[[F], F]:
    """``functools.lru_cache`` that counts hits and misses under ``cache``.

    A miss is detected exactly (the wrapped function ran), not inferred from ``cache_info()``
    deltas, which race between threads. Recursive functions are counted per call.
    """

    def decorate(fn: F) -> F:
        counters = CacheCounters(cache, registry)
        state = threading.local()

        @functools.lru_cache(maxsize=maxsize)
        def cached(*args: Any, **kwargs: Any) -> Any:
            result = fn(*args, **kwargs)
            state.missed = True  # set after fn so recursive calls cannot reset it
            return result

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            state.missed = False
            try:
                result = cached(*args, **kwargs)
            except BaseException:
                counters.miss()
                raise
            if state.missed:
                counters.miss()
            else:
                counters.hit()
            return result

        wrapper.cache_info = cached.cache_info  # type: ignore[attr-defined]
        wrapper.cache_clear = cached.cache_clear  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

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
    """One level of a tiered cache: ``get`` returns ``MISSING`` on a miss."""

    def get(self, key: str) -> Any: ...

    def set(self, key: str, value: Any) -> None: ...


MISSING = _MISSING


class MappingLevel:
    """An in-process level (dict, cachetools cache) with hit/miss counting."""

    def __init__(self, mapping: MutableMapping[Any, Any], cache: str, *,
                 registry: CollectorRegistry | None = None) -> None:
        self._cache = CountedCache(mapping, cache, registry=registry)

    def get(self, key: str) -> Any:
        return self._cache.get(key, MISSING)

    def set(self, key: str, value: Any) -> None:
        self._cache[key] = value


class RedisLevel:
    """A Redis level (a redis-py client) storing JSON-encoded values with an optional TTL."""

    def __init__(self, client: Any, cache: str = "redis", *, ttl_seconds: int | None = None,
                 prefix: str = "", dumps: Callable[[Any], str | bytes] = json.dumps,
                 loads: Callable[[Any], Any] = json.loads,
                 registry: CollectorRegistry | None = None) -> None:
        self._client = client
        self._ttl = ttl_seconds
        self._prefix = prefix
        self._dumps, self._loads = dumps, loads
        self._counters = CacheCounters(cache, registry)

    def get(self, key: str) -> Any:
        raw = self._client.get(self._prefix + key)
        if raw is None:
            self._counters.miss()
            return MISSING
        self._counters.hit()
        return self._loads(raw)

    def set(self, key: str, value: Any) -> None:
        self._client.set(self._prefix + key, self._dumps(value), ex=self._ttl)


class CacheAside:
    """Cache-aside over one or more levels, fastest first (the seeds' L1 → L2 → loader).

    A hit on a slower level back-fills the faster ones; a full miss calls the loader and
    fills every level.
    """

    def __init__(self, levels: Sequence[CacheLevel]) -> None:
        self.levels = list(levels)

    def get_or_load(self, key: str, loader: Callable[[], Any]) -> Any:
        for depth, level in enumerate(self.levels):
            value = level.get(key)
            if value is not MISSING:
                for faster in self.levels[:depth]:
                    faster.set(key, value)
                return value
        value = loader()
        for level in self.levels:
            level.set(key, value)
        return value
