"""Fixtures for the exporters tests: real Redis, PostgreSQL and PgBouncer (see tests/servers.py)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/servers.py

import servers


@pytest.fixture(scope="session")
def redis() -> Iterator[servers.RedisServer]:
    with servers.redis_server() as server:
        yield server


@pytest.fixture(scope="session")
def postgres() -> Iterator[servers.Postgres]:
    with servers.postgres_server() as pg:
        yield pg


@pytest.fixture(scope="session")
def pgbouncer(postgres: servers.Postgres) -> Iterator[servers.PgBouncer]:
    with servers.pgbouncer_server(postgres) as bouncer:
        yield bouncer
