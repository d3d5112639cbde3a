"""The demo service: a small real ASGI API over PostgreSQL and Redis, with fault switches.

    DATABASE_URL=postgresql+psycopg://… REDIS_URL=redis://… uvicorn app:app --app-dir examples/demo

It is instrumented exactly like ``examples/exporters/asgi_app.py`` (HTTP middleware, SQLAlchemy
pool, L1/L2 cache-aside, runtime collector) so the generated rules read real series. Faults are
flipped through ``/admin/faults`` (JSON), which is how ``make demo`` and ``tests/e2e`` inject the
incidents the alerts must catch:

    curl -X POST localhost:8000/admin/faults -d '{"latency_ms": 800}'
    curl -X DELETE localhost:8000/admin/faults          # back to healthy

Switches: ``latency_ms`` (added to every /items and /search request), ``error_rate`` (fraction
answered 500), ``cache_bypass`` (every lookup misses both levels), ``slow_query_ms`` (each query
is preceded by a pg_sleep), ``hold_connections`` (that many pool connections are checked out and
held), ``leak_tasks_per_s`` / ``leak_threads_per_s`` (tasks/threads started and never finished),
``traffic_drop`` (that fraction of /items and /search requests is answered 503 by a stand-in for a
broken load balancer in front of the service, outside its instrumentation, so the service sees
its request rate fall: the throughput floor's incident; the load generator keeps its pace).

Background jobs: a scheduler enqueues ``JOBS_PER_S`` ``emails`` jobs a second, ``JOB_WORKERS``
worker coroutines run them, instrumented with the exporters' job API (``jobs_processed_total``,
``job_duration_seconds``, ``job_queue_depth`` with ``job_name="emails"``). Their switches:
``job_failure_rate`` (that fraction of jobs raises), ``job_delay_ms`` (added to every job's run
time; the workers are many enough that the queue keeps draining) and ``jobs_paused`` (the
workers stop taking jobs, so the backlog grows by ``JOBS_PER_S`` a second until resumed).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, fields
from typing import Any

from cachetools import TTLCache
from sqlalchemy import create_engine, text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from watchkeeper_exporters import (
    CacheAside,
    JobMetrics,
    MappingLevel,
    PrometheusASGIMiddleware,
    RedisLevel,
    instrument_engine,
    metrics_asgi_app,
    watch_running_loop,
)
from watchkeeper_exporters.cache import MISSING

ITEMS = 100          # rows seeded into the items table
L1_TTL_SECONDS = 10  # short in-process TTL, so L2 (Redis) sees steady traffic
L2_TTL_SECONDS = 3600
JOBS_PER_S = 10      # emails jobs enqueued per second: 150 per 15 s rate window
JOB_WORKERS = 50     # enough to keep draining the queue with job_delay_ms up to ~4 s
JOB_QUEUE_MAX = 100_000  # a paused queue stops growing here rather than without bound
JOB_RUN_SECONDS = 0.005  # a healthy job's run time (the "send")


@dataclass
class Faults:
    """The current fault switches; all off is a healthy service."""

    latency_ms: float = 0.0
    error_rate: float = 0.0
    cache_bypass: bool = False
    slow_query_ms: float = 0.0
    hold_connections: int = 0
    leak_tasks_per_s: float = 0.0
    leak_threads_per_s: float = 0.0
    traffic_drop: float = 0.0
    job_failure_rate: float = 0.0
    job_delay_ms: float = 0.0
    jobs_paused: bool = False

    def update(self, changes: dict[str, Any]) -> None:
        known = {f.name: f.type for f in fields(self)}
        for name, value in changes.items():
            if name not in known:
                raise ValueError(f"unknown fault {name!r}; known: {', '.join(known)}")
            setattr(self, name, _as(type(getattr(self, name)), value))


def _as(kind: type, value: Any) -> Any:
    """``value`` as the switch's type; refuses a string for a flag (bool("false") is True)."""
    if kind is bool and not isinstance(value, bool | int):
        raise ValueError(f"expected true or false, got {value!r}")
    return kind(value)


faults = Faults()


# --- database and caches -----------------------------------------------------------------------

def _engine() -> Any:
    url = os.environ["DATABASE_URL"]
    # 10 connections at most and a short checkout timeout: pool exhaustion shows within seconds.
    return create_engine(url, pool_size=5, max_overflow=5, pool_timeout=1)


engine = instrument_engine(_engine(), pool="main")


class TolerantRedisLevel:
    """A Redis level that degrades to a pass-through while Redis is down.

    A failed lookup counts neither as hit nor miss, so Redis being down pages once through the
    sidecar's ``redis_up`` (service demo-redis) instead of as a cache-ratio alert on demo-api.
    """

    def __init__(self, level: RedisLevel) -> None:
        self.level = level

    def get(self, key: str) -> Any:
        import redis

        try:
            return self.level.get(key)
        except redis.RedisError:
            return MISSING

    def set(self, key: str, value: Any) -> None:
        import redis

        with contextlib.suppress(redis.RedisError):
            self.level.set(key, value)


def _redis_client() -> Any:
    import redis

    return redis.Redis.from_url(os.environ["REDIS_URL"], socket_timeout=0.5,
                                socket_connect_timeout=0.5)


class LockedLevel:
    """A level behind a lock: cachetools caches are not thread-safe, and lookups run in the
    default executor's threads."""

    def __init__(self, level: Any, lock: threading.Lock) -> None:
        self.level, self.lock = level, lock

    def get(self, key: str) -> Any:
        with self.lock:
            return self.level.get(key)

    def set(self, key: str, value: Any) -> None:
        with self.lock:
            self.level.set(key, value)


l1_lock = threading.Lock()
l1_store: TTLCache = TTLCache(maxsize=10_000, ttl=L1_TTL_SECONDS)
l1 = LockedLevel(MappingLevel(l1_store, "items_l1"), l1_lock)
levels: list[Any] = [l1]
redis_client = _redis_client() if os.environ.get("REDIS_URL") else None
if redis_client is not None:
    levels.append(TolerantRedisLevel(RedisLevel(redis_client, "items_l2",
                                                ttl_seconds=L2_TTL_SECONDS, prefix="item:")))
items_cache = CacheAside(levels)


def _query(sql: str, params: dict[str, Any]) -> list[Any]:
    with engine.connect() as conn:
        if faults.slow_query_ms > 0:
            conn.execute(text("SELECT pg_sleep(:s)"), {"s": faults.slow_query_ms / 1000})
        return list(conn.execute(text(sql), params))


def _load_item(item_id: int) -> dict[str, Any]:
    rows = _query("SELECT id, name FROM items WHERE id = :id", {"id": item_id})
    return {"id": rows[0][0], "name": rows[0][1]} if rows else {"id": item_id, "name": None}


def _bypass(key: str) -> None:
    """Cache bypass/flush: drop the key from every level so the lookup is a counted miss."""
    with l1_lock:
        l1_store.pop(key, None)
    if redis_client is not None:
        import redis

        with contextlib.suppress(redis.RedisError):
            redis_client.delete("item:" + key)


def get_item(item_id: int) -> dict[str, Any]:
    if faults.cache_bypass:
        _bypass(str(item_id))
    return items_cache.get_or_load(str(item_id), lambda: _load_item(item_id))


def warm_caches() -> int:
    """Fill both levels with every item (uncounted ``set``s): no cold-cache page at start."""
    for item_id in range(1, ITEMS + 1):
        value = _load_item(item_id)
        for level in levels:
            level.set(str(item_id), value)
    return ITEMS


# --- faults that need background work ------------------------------------------------------------

class Leaks:
    """Tasks and threads started at the configured rates, each blocked until ``clear()``."""

    def __init__(self) -> None:
        self.tasks: list[asyncio.Task] = []
        self.release = threading.Event()
        self.threads: list[threading.Thread] = []
        self.holders: list[threading.Thread] = []

    async def run(self) -> None:
        """Every 100 ms start the tasks/threads due, and the connection holders wanted."""
        forever = asyncio.Event()
        due_tasks = due_threads = 0.0
        while True:
            await asyncio.sleep(0.1)
            due_tasks += faults.leak_tasks_per_s / 10
            due_threads += faults.leak_threads_per_s / 10
            while due_tasks >= 1:
                due_tasks -= 1
                self.tasks.append(asyncio.create_task(forever.wait()))
            while due_threads >= 1:
                due_threads -= 1
                self._start(self.threads, self.release.wait)
            if faults.leak_tasks_per_s == 0 and self.tasks:
                self._cancel_tasks()
            if faults.leak_threads_per_s == 0 and self.threads:
                self._end_threads(self.threads)
            self._hold_connections()

    def _start(self, group: list[threading.Thread], target: Callable[[], Any]) -> None:
        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        group.append(thread)

    def _cancel_tasks(self) -> None:
        for task in self.tasks:
            task.cancel()
        self.tasks.clear()

    def _end_threads(self, group: list[threading.Thread]) -> None:
        self.release.set()
        for thread in group:
            thread.join(timeout=2)
        group.clear()
        self.release = threading.Event()

    def _hold_connections(self) -> None:
        self.holders = [t for t in self.holders if t.is_alive()]
        missing = faults.hold_connections - len(self.holders)
        for _ in range(max(missing, 0)):
            self._start(self.holders, _hold_one_connection)


def _hold_one_connection() -> None:
    """Check a connection out and keep it until the fault asks for fewer holders."""
    while faults.hold_connections > 0:
        try:
            with engine.connect() as conn:
                conn.execute(text("SELECT 1"))
                while faults.hold_connections > 0:
                    time.sleep(0.05)
        except Exception:  # pool timeout while requests hold connections: try again
            time.sleep(0.05)


leaks = Leaks()


# --- background jobs -----------------------------------------------------------------------------

class JobFailed(RuntimeError):
    """An injected job failure (``job_failure_rate``)."""


class EmailJobs:
    """The ``emails`` queue: a steady scheduler, a pool of worker coroutines, and metrics.

    The scheduler does not depend on HTTP traffic, so a throughput drop leaves the jobs healthy
    and a job fault leaves HTTP healthy: each scenario pages for one signal only.
    """

    def __init__(self) -> None:
        self.metrics = JobMetrics("emails")
        self.queue: asyncio.Queue[int] = asyncio.Queue(maxsize=JOB_QUEUE_MAX)
        self.metrics.queue_depth_from(self.queue.qsize)

    async def schedule(self) -> None:
        """Enqueue ``JOBS_PER_S`` jobs a second, on a fixed clock (no drift under load)."""
        loop = asyncio.get_running_loop()
        next_at, number = loop.time(), 0
        while True:
            next_at += 1 / JOBS_PER_S
            await asyncio.sleep(max(0.0, next_at - loop.time()))
            number += 1
            with contextlib.suppress(asyncio.QueueFull):
                self.queue.put_nowait(number)

    async def work(self) -> None:
        """One worker: take a job unless paused, run it under the job metrics."""
        while True:
            number = await self.queue.get()
            if faults.jobs_paused:  # taken while waiting: back in the queue it counts in
                self.queue.put_nowait(number)
                while faults.jobs_paused:
                    await asyncio.sleep(0.1)
                continue
            with contextlib.suppress(JobFailed):
                async with self.metrics.track():
                    await send_email(number)

    def tasks(self) -> list[asyncio.Task]:
        return [asyncio.create_task(self.schedule()),
                *(asyncio.create_task(self.work()) for _ in range(JOB_WORKERS))]


async def send_email(number: int) -> None:
    """The job itself: a short wait standing in for an SMTP round trip."""
    await asyncio.sleep(JOB_RUN_SECONDS + faults.job_delay_ms / 1000)
    if faults.job_failure_rate > 0 and random.random() < faults.job_failure_rate:
        raise JobFailed(f"email {number}: injected failure")


emails = EmailJobs()


# --- routes --------------------------------------------------------------------------------------

async def _apply_request_faults() -> Response | None:
    if faults.latency_ms > 0:
        await asyncio.sleep(faults.latency_ms / 1000)
    if faults.error_rate > 0 and random.random() < faults.error_rate:
        return PlainTextResponse("injected failure\n", status_code=500)
    return None


async def item(request: Request) -> Response:
    if (failure := await _apply_request_faults()) is not None:
        return failure
    return JSONResponse(await asyncio.to_thread(get_item, request.path_params["item_id"]))


async def search(request: Request) -> Response:
    """An uncached query, so the database sees steady traffic whatever the cache does."""
    if (failure := await _apply_request_faults()) is not None:
        return failure
    pattern = "%" + request.query_params.get("q", "") + "%"
    rows = await asyncio.to_thread(
        _query, "SELECT count(*) FROM items WHERE name LIKE :p", {"p": pattern})
    return JSONResponse({"matches": rows[0][0]})


async def health(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok\n")


async def admin_faults(request: Request) -> Response:
    if request.method == "DELETE":
        faults.update(asdict(Faults()))
    elif request.method == "POST":
        try:
            faults.update(await request.json())
        except (ValueError, TypeError) as exc:
            return PlainTextResponse(f"{exc}\n", status_code=400)
    return JSONResponse(asdict(faults))


async def admin_warm(request: Request) -> Response:
    return JSONResponse({"warmed": await asyncio.to_thread(warm_caches)})


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    watch_running_loop()
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, name TEXT)"))
        conn.execute(text("DELETE FROM items"))
        conn.execute(text("INSERT INTO items (id, name) SELECT i, 'item ' || i "
                          "FROM generate_series(1, :n) AS i"), {"n": ITEMS})
    background = [asyncio.create_task(leaks.run()), *emails.tasks()]
    yield
    for task in background:
        task.cancel()
    faults.update(asdict(Faults()))
    leaks.release.set()


routes = [
    Route("/items/{item_id:int}", item),
    Route("/search", search),
    Route("/health", health),
    Route("/admin/faults", admin_faults, methods=["GET", "POST", "DELETE"]),
    Route("/admin/warm", admin_warm, methods=["POST"]),
    Route("/metrics", metrics_asgi_app()),
]
instrumented = PrometheusASGIMiddleware(Starlette(routes=routes, lifespan=lifespan))
DROPPABLE = ("/items/", "/search")  # the API; never /metrics, /admin or /health


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The service behind a stand-in load balancer: with ``traffic_drop`` set, that share of
    API requests is answered 503 here, before the instrumented app sees it (``traffic_drop``
    is the throughput floor's incident: requests that never reach the service)."""
    if (scope["type"] == "http" and faults.traffic_drop > 0
            and scope["path"].startswith(DROPPABLE) and random.random() < faults.traffic_drop):
        await PlainTextResponse("dropped in front of the service\n",
                                status_code=503)(scope, receive, send)
        return
    await instrumented(scope, receive, send)
