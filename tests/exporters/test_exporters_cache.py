"""Cache counters: lru decorator, dict/cachetools wrapper, Redis cache-aside (real Redis)."""

from __future__ import annotations

import asyncio
import functools
import sys
import threading
import time

import cachetools
import pytest
import redis as redis_py
import redis.asyncio as redis_asyncio
import servers
from metrics_text import value
from prometheus_client import CollectorRegistry
from watchkeeper_exporters.cache import (
    CacheAside,
    CountedCache,
    MappingLevel,
    RedisLevel,
    counted_lru_cache,
)


def hits(registry: CollectorRegistry, cache: str) -> float | None:
    return value(registry, "cache_hits_total", cache=cache)


def misses(registry: CollectorRegistry, cache: str) -> float | None:
    return value(registry, "cache_misses_total", cache=cache)


def test_lru_decorator_counts_exactly_even_when_recursive() -> None:
    registry = CollectorRegistry()

    @counted_lru_cache("fib", maxsize=None, registry=registry)
    def fib(n: int) -> int:
        return n if n < 2 else fib(n - 1) + fib(n - 2)

    assert fib(10) == 55
    # fib(0..10) each miss once; fib(n-2) inside fib(n) hits for n = 3..10
    # (inside fib(2), fib(0) is still a miss).
    assert (hits(registry, "fib"), misses(registry, "fib")) == (8, 11)
    fib(10)
    assert hits(registry, "fib") == 9
    assert fib.cache_info().currsize == 11


def test_lru_decorator_is_exact_across_threads() -> None:
    registry = CollectorRegistry()

    @counted_lru_cache("sq", registry=registry)
    def square(n: int) -> int:
        return n * n

    def work() -> None:
        for i in range(200):
            square(i % 20)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert hits(registry, "sq") + misses(registry, "sq") == 800
    assert misses(registry, "sq") >= 20


def test_lru_decorator_counts_an_exception_as_a_miss() -> None:
    registry = CollectorRegistry()

    @counted_lru_cache("bad", registry=registry)
    def bad(n: int) -> int:
        raise KeyError(n)

    with pytest.raises(KeyError):
        bad(1)
    assert (hits(registry, "bad"), misses(registry, "bad")) == (0, 1)


def test_counted_cache_with_cachetools_decorator() -> None:
    registry = CollectorRegistry()
    calls = []

    @cachetools.cached(CountedCache(cachetools.TTLCache(maxsize=10, ttl=60), "ttl",
                                    registry=registry))
    def load(key: str) -> str:
        calls.append(key)
        return key.upper()

    assert [load("a"), load("a"), load("b")] == ["A", "A", "B"]
    assert calls == ["a", "b"]
    assert (hits(registry, "ttl"), misses(registry, "ttl")) == (1, 2)


def test_counted_cache_get_and_membership() -> None:
    registry = CollectorRegistry()
    cache = CountedCache({"k": 1}, "plain", registry=registry)
    assert cache.get("k") == 1
    assert cache.get("nope", 5) == 5
    assert "k" in cache  # a membership test is not a lookup
    with pytest.raises(KeyError):
        cache["missing"]
    assert (hits(registry, "plain"), misses(registry, "plain")) == (1, 2)


def test_two_level_cache_aside_counts_each_level(redis) -> None:
    registry = CollectorRegistry()
    client = redis_py.Redis.from_url(redis.url)
    client.flushdb()
    l1: dict[str, object] = {}
    cache = CacheAside([MappingLevel(l1, "l1", registry=registry),
                        RedisLevel(client, "l2", ttl_seconds=30, prefix="t:",
                                   registry=registry)])
    loads = []

    def loader() -> dict[str, int]:
        loads.append(1)
        return {"v": 1}

    assert cache.get_or_load("a", loader) == {"v": 1}   # miss, miss, load
    assert cache.get_or_load("a", loader) == {"v": 1}   # L1 hit
    l1.clear()                                           # e.g. another instance
    assert cache.get_or_load("a", loader) == {"v": 1}   # L1 miss, L2 hit, back-fill
    assert cache.get_or_load("a", loader) == {"v": 1}   # L1 hit
    assert len(loads) == 1
    assert 0 < client.ttl("t:a") <= 30
    assert (hits(registry, "l1"), misses(registry, "l1")) == (2, 2)
    assert (hits(registry, "l2"), misses(registry, "l2")) == (1, 1)


def _deepest_cold_fib(decorate) -> int:
    """Largest n whose cold fib(n) completes at a fixed recursion limit."""
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(1000)
    try:
        best = 0
        for n in range(50, 1000, 10):
            @decorate
            def fib(k: int) -> int:
                return k if k < 2 else fib(k - 1) + fib(k - 2)
            try:
                fib(n)
            except RecursionError:
                return best
            best = n
        return best
    finally:
        sys.setrecursionlimit(limit)


def test_lru_decorator_keeps_the_recursion_depth_of_lru_cache() -> None:
    plain = _deepest_cold_fib(functools.lru_cache(maxsize=None))
    counted = _deepest_cold_fib(counted_lru_cache("deep", maxsize=None,
                                                  registry=CollectorRegistry()))
    assert counted >= plain - 10, (counted, plain)


def test_lru_cache_clear_keeps_counts() -> None:
    registry = CollectorRegistry()

    @counted_lru_cache("cl", registry=registry)
    def ident(n: int) -> int:
        return n

    ident(1), ident(1)
    ident.cache_clear()
    ident(1)
    assert (hits(registry, "cl"), misses(registry, "cl")) == (1, 2)


def _down_redis_url() -> str:
    return f"redis://127.0.0.1:{servers.free_port()}/0"  # nothing listens there


def test_cache_aside_falls_back_to_the_loader_when_a_level_is_down() -> None:
    registry = CollectorRegistry()
    client = redis_py.Redis.from_url(_down_redis_url(), socket_connect_timeout=0.5)
    cache = CacheAside([MappingLevel({}, "o1", registry=registry),
                        RedisLevel(client, "o2", registry=registry)])
    assert cache.get_or_load("k", lambda: "loaded") == "loaded"   # answered despite Redis
    assert cache.get_or_load("k", lambda: "again") == "loaded"    # from L1
    assert (hits(registry, "o2"), misses(registry, "o2")) == (0, 1)  # outage lowers the ratio
    assert value(registry, "cache_errors_total", cache="o2", operation="get") == 1
    assert value(registry, "cache_errors_total", cache="o2", operation="set") == 1
    assert value(registry, "cache_errors_total", cache="o1", operation="get") == 0  # exists


def test_async_redis_level_with_redis_asyncio(redis) -> None:
    registry = CollectorRegistry()
    loads: list[str] = []

    async def scenario() -> list[object]:
        client = redis_asyncio.Redis.from_url(redis.url)
        await client.flushdb()
        cache = CacheAside([MappingLevel({}, "a1", registry=registry),
                            RedisLevel(client, "a2", ttl_seconds=30, registry=registry)])

        async def loader() -> dict[str, int]:
            loads.append("db")
            return {"v": 2}

        got = [await cache.aget_or_load("k", loader)]
        cache.levels[0] = MappingLevel({}, "a1", registry=registry)  # a fresh L1
        got.append(await cache.aget_or_load("k", loader))
        await client.aclose()
        return got

    assert asyncio.run(scenario()) == [{"v": 2}, {"v": 2}]
    assert loads == ["db"]
    assert (hits(registry, "a2"), misses(registry, "a2")) == (1, 1)
    assert (hits(registry, "a1"), misses(registry, "a1")) == (0, 2)


def test_async_client_on_the_sync_path_is_a_clear_error_and_counts_nothing(redis) -> None:
    registry = CollectorRegistry()
    client = redis_asyncio.Redis.from_url(redis.url)
    cache = CacheAside([RedisLevel(client, "wrong", registry=registry)])
    with pytest.raises(TypeError, match="aget_or_load"):
        cache.get_or_load("k", lambda: 1)
    assert hits(registry, "wrong") == 0 and misses(registry, "wrong") == 0


def test_async_redis_outage_falls_back_and_is_counted() -> None:
    registry = CollectorRegistry()

    async def scenario() -> object:
        client = redis_asyncio.Redis.from_url(_down_redis_url(), socket_connect_timeout=0.5)
        cache = CacheAside([RedisLevel(client, "ad", registry=registry)])
        started = time.monotonic()
        got = await cache.aget_or_load("k", lambda: "fallback")
        assert time.monotonic() - started < 5
        return got

    assert asyncio.run(scenario()) == "fallback"
    assert misses(registry, "ad") == 1
    assert value(registry, "cache_errors_total", cache="ad", operation="get") == 1
