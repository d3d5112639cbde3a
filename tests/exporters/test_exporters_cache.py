"""Cache counters: lru decorator, dict/cachetools wrapper, Redis cache-aside (real Redis)."""

from __future__ import annotations

import threading

import cachetools
import pytest
import redis as redis_py
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
