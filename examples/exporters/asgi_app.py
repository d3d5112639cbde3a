"""Sample Starlette app instrumented with watchkeeper_exporters in a few lines.

    DATABASE_URL=postgresql+psycopg://… REDIS_URL=redis://… uvicorn asgi_app:app

Without ``DATABASE_URL`` it uses an in-memory SQLite database; without ``REDIS_URL`` the L2
cache level is skipped. ``/metrics`` is mounted into the app.
"""

from __future__ import annotations

import asyncio
import os
from contextlib import asynccontextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.pool import StaticPool
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
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


def _engine():
    url = os.environ.get("DATABASE_URL")
    if url:
        return create_engine(url, pool_size=5, max_overflow=5, pool_timeout=5)
    return create_engine("sqlite://", poolclass=StaticPool,
                         connect_args={"check_same_thread": False})


engine = instrument_engine(_engine(), pool="main")                      # DB + pool metrics
levels = [MappingLevel({}, "items_l1")]                                  # L1: in-process
if os.environ.get("REDIS_URL"):
    import redis

    levels.append(RedisLevel(redis.Redis.from_url(os.environ["REDIS_URL"]), "items_l2",
                             ttl_seconds=60, prefix="item:"))            # L2: Redis
items_cache = CacheAside(levels)
reindex = JobMetrics("reindex")                                          # background jobs


def _load_item(item_id: int) -> dict:
    with engine.connect() as conn:
        row = conn.execute(text("SELECT id, name FROM items WHERE id = :id"),
                           {"id": item_id}).first()
    return {"id": row[0], "name": row[1]} if row else {"id": item_id, "name": None}


async def item(request: Request) -> JSONResponse:
    item_id = request.path_params["item_id"]
    value = await asyncio.to_thread(items_cache.get_or_load, str(item_id),
                                    lambda: _load_item(item_id))
    return JSONResponse(value)


def _reindex(fail: bool) -> None:
    with reindex.track(), engine.begin() as conn:
        conn.execute(text("UPDATE items SET name = name WHERE id < 10"))
        if fail:
            raise RuntimeError("reindex failed")


async def run_job(request: Request) -> PlainTextResponse:
    reindex.set_queue_depth(1)
    try:
        await asyncio.to_thread(_reindex, request.path_params["outcome"] == "fail")
    except RuntimeError:
        return PlainTextResponse("failed\n", status_code=500)
    finally:
        reindex.set_queue_depth(0)
    return PlainTextResponse("done\n")


async def boom(request: Request) -> PlainTextResponse:
    raise RuntimeError("unhandled error, recorded as code 500")


async def health(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok\n")


@asynccontextmanager
async def lifespan(app: Starlette):
    watch_running_loop()                                                 # runtime metrics
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, name TEXT)"))
        conn.execute(text("DELETE FROM items"))
        conn.execute(text("INSERT INTO items (id, name) VALUES (1, 'one'), (2, 'two')"))
    yield


routes = [
    Route("/items/{item_id:int}", item),
    Route("/jobs/{outcome}", run_job),
    Route("/boom", boom),
    Route("/health", health),
    Route("/metrics", metrics_asgi_app()),  # a Route, not a Mount: no 307 to /metrics/
]
app = PrometheusASGIMiddleware(Starlette(routes=routes, lifespan=lifespan))  # HTTP metrics
