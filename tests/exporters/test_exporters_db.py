"""SQLAlchemy integration against a real PostgreSQL: query latency and pool metrics."""

from __future__ import annotations

import time

import pytest
from metrics_text import value
from prometheus_client import CollectorRegistry
from sqlalchemy import create_engine, exc, text
from watchkeeper_exporters.db import classify, instrument_engine


@pytest.mark.parametrize(("sql", "expected"), [
    ("SELECT a FROM users WHERE id = 1", ("SELECT", "users")),
    ('select * from "Orders" o join items i on 1=1', ("SELECT", "orders")),
    ("INSERT INTO public.items (id) VALUES (1)", ("INSERT", "public.items")),
    ("  UPDATE items SET a = 1", ("UPDATE", "items")),
    ("DELETE FROM items WHERE id = 2", ("DELETE", "items")),
    ("WITH x AS (SELECT 1) SELECT * FROM x", ("WITH", "")),
    ("SELECT 1", ("SELECT", "")),
    ("frobnicate the database", ("OTHER", "")),
])
def test_classify(sql: str, expected: tuple[str, str]) -> None:
    assert classify(sql) == expected


def test_query_duration_by_operation_and_table(postgres) -> None:
    registry = CollectorRegistry()
    engine = instrument_engine(create_engine(postgres.sqlalchemy_url()), "q", registry=registry)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS dbt (id int)"))
        conn.execute(text("INSERT INTO dbt VALUES (1), (2)"))
        conn.execute(text("SELECT id FROM dbt")).all()
        conn.execute(text("SELECT id FROM dbt")).all()
    with pytest.raises(exc.ProgrammingError), engine.connect() as conn:
        conn.execute(text("SELECT * FROM no_such_table"))
    name = "db_query_duration_seconds_count"
    assert value(registry, name, operation="INSERT", table="dbt", result="success") == 1
    assert value(registry, name, operation="SELECT", table="dbt", result="success") == 2
    assert value(registry, name, operation="SELECT", table="no_such_table",
                 result="error") == 1  # failed queries are told apart
    assert value(registry, name, operation="SELECT", table="no_such_table",
                 result="success") is None
    engine.dispose()


def test_instrumenting_an_engine_twice_does_not_double_count(postgres) -> None:
    registry = CollectorRegistry()
    engine = create_engine(postgres.sqlalchemy_url())
    assert instrument_engine(engine, "twice", registry=registry) is engine
    assert instrument_engine(engine, "twice", registry=registry) is engine
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    assert value(registry, "db_query_duration_seconds_count", operation="SELECT", table="",
                 result="success") == 1
    assert value(registry, "db_client_connection_wait_time_seconds_count", pool="twice") == 1
    with pytest.raises(ValueError, match="already instrumented as pool 'twice'"):
        instrument_engine(engine, "other", registry=registry)
    engine.dispose()


def test_pool_used_idle_max_and_waits(postgres) -> None:
    registry = CollectorRegistry()
    engine = instrument_engine(
        create_engine(postgres.sqlalchemy_url(), pool_size=2, max_overflow=1),
        "main", registry=registry)
    assert value(registry, "db_client_connection_max", pool="main") == 3
    first, second = engine.connect(), engine.connect()
    assert value(registry, "db_client_connection_count", pool="main", state="used") == 2
    assert value(registry, "db_client_connection_count", pool="main", state="idle") == 0
    first.close()
    assert value(registry, "db_client_connection_count", pool="main", state="used") == 1
    assert value(registry, "db_client_connection_count", pool="main", state="idle") == 1
    second.close()
    assert value(registry, "db_client_connection_count", pool="main", state="idle") == 2
    assert value(registry, "db_client_connection_wait_time_seconds_count", pool="main") == 2
    engine.dispose()  # replaces the pool: metrics must follow the new one
    with engine.connect():
        assert value(registry, "db_client_connection_count", pool="main", state="used") == 1
    assert value(registry, "db_client_connection_wait_time_seconds_count", pool="main") == 3
    engine.dispose()


def test_pool_timeout_is_counted(postgres) -> None:
    registry = CollectorRegistry()
    engine = instrument_engine(
        create_engine(postgres.sqlalchemy_url(), pool_size=1, max_overflow=0, pool_timeout=0.2),
        "tiny", registry=registry)
    started = time.monotonic()
    with engine.connect():
        connecting = time.monotonic() - started  # its checkout: a connection made, as fast
        with pytest.raises(exc.TimeoutError):   # as the (loaded) machine makes one
            engine.connect()
        assert value(registry, "db_client_connection_timeouts_total", pool="tiny") == 1
    assert value(registry, "db_client_connection_wait_time_seconds_count", pool="tiny") == 2
    # the timed-out checkout waited pool_timeout (0.2 s): never in le=0.1, and in the sum
    quick = value(registry, "db_client_connection_wait_time_seconds_bucket", pool="tiny",
                  le="0.1")
    assert quick <= 1
    if connecting <= 0.1:  # the successful checkout, timed inside that, was quick too
        assert quick == 1
    assert value(registry, "db_client_connection_wait_time_seconds_sum", pool="tiny") >= 0.2
    engine.dispose()
