"""Targets the sidecar scrapes. Each ``scrape`` raises on any failure; the caller turns that
into ``<kind>_up 0`` so one bad target never fails the whole scrape."""

from __future__ import annotations

import contextlib
import math
from abc import ABC, abstractmethod
from typing import Any, ClassVar

from .samples import Samples


class Target(ABC):
    """One Redis/PostgreSQL/PgBouncer endpoint, holding a connection between scrapes."""

    kind: str

    def __init__(self, name: str, url: str, timeout: float, password: str | None = None) -> None:
        self.name = name
        self.url = url
        self.timeout = timeout
        self.password = password

    @abstractmethod
    def scrape(self, out: Samples) -> None: ...

    def close(self) -> None:  # noqa: B027 - optional hook
        """Drop the connection (after an error, so the next scrape reconnects)."""


class RedisTarget(Target):
    """Redis ``INFO``: redis_exporter's names plus the canonical cache counters."""

    kind = "redis"
    _GAUGES: ClassVar[dict[str, tuple[Any, ...]]] = {
        "used_memory": ("redis_memory_used_bytes", "Memory used by Redis."),
        "maxmemory": ("redis_memory_max_bytes", "maxmemory setting (0 = unlimited)."),
        "connected_clients": ("redis_connected_clients", "Connected clients."),
        "blocked_clients": ("redis_blocked_clients", "Clients blocked in a blocking call."),
        "uptime_in_seconds": ("redis_uptime_in_seconds", "Seconds since the server started."),
    }
    _COUNTERS: ClassVar[dict[str, tuple[Any, ...]]] = {
        "evicted_keys": ("redis_evicted_keys_total", "Keys evicted for maxmemory."),
        "expired_keys": ("redis_expired_keys_total", "Keys expired by TTL."),
        "rejected_connections": ("redis_rejected_connections_total",
                                 "Connections rejected for maxclients."),
        "keyspace_hits": ("redis_keyspace_hits_total", "Successful key lookups."),
        "keyspace_misses": ("redis_keyspace_misses_total", "Failed key lookups."),
        "total_commands_processed": ("redis_commands_processed_total", "Commands processed."),
    }

    def __init__(self, name: str, url: str, timeout: float, password: str | None = None) -> None:
        super().__init__(name, url, timeout, password)
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        extra = {"password": password} if password else {}
        self._client = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0), health_check_interval=0, **extra)

    def scrape(self, out: Samples) -> None:
        info = self._client.info("all")
        t = self.name
        for key, (name, doc) in self._GAUGES.items():
            if key in info:
                out.gauge(name, doc, info[key], target=t)
        for key, (name, doc) in self._COUNTERS.items():
            if key in info:
                out.counter(name, doc, info[key], target=t)
        out.counter("cache_hits_total", "Cache lookups that found the key.",
                    info.get("keyspace_hits", 0), cache=t)
        out.counter("cache_misses_total", "Cache lookups that did not find the key.",
                    info.get("keyspace_misses", 0), cache=t)
        self._commands(info, out)
        for key, value in info.items():
            if key.startswith("db") and isinstance(value, dict) and "keys" in value:
                out.gauge("redis_db_keys", "Keys per database.", value["keys"], target=t, db=key)

    def _commands(self, info: dict[str, Any], out: Samples) -> None:
        """Per-command calls and time from ``INFO commandstats`` (mean latency = ratio)."""
        for key, stats in info.items():
            if not key.startswith("cmdstat_") or not isinstance(stats, dict):
                continue
            cmd = key[len("cmdstat_"):]
            out.counter("redis_commands_total", "Calls per command.", stats.get("calls", 0),
                        target=self.name, cmd=cmd)
            out.counter("redis_commands_duration_seconds_total", "Time spent per command.",
                        stats.get("usec", 0) / 1e6, target=self.name, cmd=cmd)

    def close(self) -> None:
        self._client.connection_pool.disconnect()


def _dicts(cur: Any) -> list[dict[str, Any]]:
    names = [col.name for col in cur.description or ()]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


class _PsycopgTarget(Target):
    """Shared connection handling for PostgreSQL and the PgBouncer admin console."""

    def __init__(self, name: str, url: str, timeout: float, password: str | None = None) -> None:
        super().__init__(name, url, timeout, password)
        self._conn: Any = None

    def _connection(self) -> Any:
        import psycopg

        if self._conn is None or self._conn.closed:
            extra = {"password": self.password} if self.password else {}
            self._conn = psycopg.connect(
                self.url, autocommit=True, connect_timeout=max(2, math.ceil(self.timeout)),
                application_name="watchkeeper-exporter", **self._options(), **extra)
        return self._conn

    def _options(self) -> dict[str, str]:
        return {}

    def _rows(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
        with self._connection().cursor() as cur:
            cur.execute(sql, params)
            return _dicts(cur)

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()


_ACTIVITY_SQL = """
SELECT datname, coalesce(state, 'unknown') AS state, count(*) AS n,
       count(*) FILTER (WHERE wait_event_type = 'Lock') AS waiting,
       coalesce(max(extract(epoch FROM now() - xact_start)), 0) AS max_tx
FROM pg_stat_activity
WHERE datname IS NOT NULL AND backend_type = 'client backend'
GROUP BY 1, 2
"""
_DATABASE_SQL = """
SELECT datname, numbackends, xact_commit, xact_rollback, blks_read, blks_hit, deadlocks
FROM pg_stat_database WHERE datname IS NOT NULL
"""
_SETTINGS_SQL = """
SELECT name, setting::float AS value FROM pg_settings
WHERE name IN ('max_connections', 'superuser_reserved_connections')
"""
_STATEMENTS_SQL = """
WITH s AS (
  SELECT queryid, sum(calls) AS calls, sum(total_exec_time) AS ms, sum(rows) AS rows
  FROM pg_stat_statements GROUP BY queryid
), ranked AS (SELECT *, row_number() OVER (ORDER BY ms DESC) AS rank FROM s)
SELECT CASE WHEN rank <= %(top)s THEN queryid::text ELSE 'other' END AS queryid,
       sum(calls) AS calls, sum(ms) / 1000.0 AS seconds, sum(rows) AS rows
FROM ranked GROUP BY 1
"""
_EXTENSION_SQL = "SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'"
_STATES = ("active", "idle", "idle in transaction", "idle in transaction (aborted)",
           "fastpath function call", "disabled")


class PostgresTarget(_PsycopgTarget):
    """PostgreSQL statistics views, with postgres_exporter's names where one exists."""

    kind = "pg"

    def __init__(self, name: str, url: str, timeout: float, password: str | None = None,
                 top_queries: int = 20) -> None:
        super().__init__(name, url, timeout, password)
        self._top = top_queries
        self._has_statements: bool | None = None

    def close(self) -> None:
        self._has_statements = None
        super().close()

    def _options(self) -> dict[str, str]:
        """Server-side timeouts, so a slow query cannot hold the scrape thread."""
        ms = int(self.timeout * 1000)
        return {"options": f"-c statement_timeout={ms} -c lock_timeout={ms}"}

    def scrape(self, out: Samples) -> None:
        """All queries in one pipeline: one network round trip per scrape, not five."""
        queries: list[tuple[str, Any]] = [(_SETTINGS_SQL, None), (_ACTIVITY_SQL, None),
                                          (_DATABASE_SQL, None), (_EXTENSION_SQL, None)]
        if self._has_statements is None:  # first scrape on this connection
            self._has_statements = bool(self._rows(_EXTENSION_SQL))
        if self._has_statements:  # as of the previous scrape; a dropped view fails once
            queries.append((_STATEMENTS_SQL, {"top": self._top}))
        settings, activity, databases, extension, *statements = self._batch(queries)
        self._has_statements = bool(extension)
        t = self.name
        for row in settings:
            out.gauge(f"pg_settings_{row['name']}", f"Server setting {row['name']}.",
                      row["value"], target=t)
        self._activity(activity, out)
        self._databases(databases, out)
        if statements:
            self._statements(statements[0], out)

    def _batch(self, queries: list[tuple[str, Any]]) -> list[list[dict[str, Any]]]:
        conn = self._connection()
        with conn.pipeline():
            cursors = [conn.cursor() for _ in queries]
            for cur, (sql, params) in zip(cursors, queries, strict=True):
                cur.execute(sql, params)
        return [_dicts(cur) for cur in cursors]

    def _databases(self, rows: list[dict[str, Any]], out: Samples) -> None:
        t = self.name
        for row in rows:
            labels = {"target": t, "datname": row["datname"]}
            out.gauge("pg_stat_database_numbackends", "Backends connected to the database.",
                      row["numbackends"], **labels)
            for col in ("xact_commit", "xact_rollback", "blks_read", "blks_hit", "deadlocks"):
                out.counter(f"pg_stat_database_{col}", f"pg_stat_database.{col}.", row[col],
                            **labels)

    def _activity(self, rows: list[dict[str, Any]], out: Samples) -> None:
        t = self.name
        counts: dict[tuple[str, str], int] = {}
        waiting: dict[str, int] = {}
        for row in rows:
            counts[(row["datname"], row["state"])] = row["n"]
            waiting[row["datname"]] = waiting.get(row["datname"], 0) + row["waiting"]
            out.gauge("pg_stat_activity_max_tx_duration",
                      "Age of the oldest open transaction, by state (seconds).",
                      float(row["max_tx"]), target=t, datname=row["datname"], state=row["state"])
        for datname in {d for d, _ in counts}:
            for state in _STATES:
                out.gauge("pg_stat_activity_count", "Server connections by database and state.",
                          counts.get((datname, state), 0), target=t, datname=datname,
                          state=state)
            out.gauge("pg_stat_activity_waiting_count",
                      "Sessions waiting for a lock held by another session.",
                      waiting[datname], target=t, datname=datname)

    def _statements(self, rows: list[dict[str, Any]], out: Samples) -> None:
        """Top-N query classes by total time from pg_stat_statements; the rest is ``other``."""
        for row in rows:
            labels = {"target": self.name, "queryid": row["queryid"]}
            out.counter("pg_stat_statements_calls_total", "Calls per query class.",
                        row["calls"], **labels)
            out.counter("pg_stat_statements_seconds_total", "Execution time per query class.",
                        float(row["seconds"]), **labels)
            out.counter("pg_stat_statements_rows_total", "Rows per query class.", row["rows"],
                        **labels)


class PgBouncerTarget(_PsycopgTarget):
    """PgBouncer admin console ``SHOW POOLS`` / ``SHOW STATS`` (pgbouncer_exporter's names)."""

    kind = "pgbouncer"
    _POOLS: ClassVar[dict[str, tuple[Any, ...]]] = {
        "cl_active": ("pgbouncer_pools_client_active_connections", "Clients linked to a server."),
        "cl_waiting": ("pgbouncer_pools_client_waiting_connections",
                       "Clients waiting for a server connection."),
        "sv_active": ("pgbouncer_pools_server_active_connections", "Server connections in use."),
        "sv_idle": ("pgbouncer_pools_server_idle_connections", "Idle server connections."),
        "sv_used": ("pgbouncer_pools_server_used_connections",
                    "Server connections idle longer than server_check_delay."),
        "sv_login": ("pgbouncer_pools_server_login_connections",
                     "Server connections logging in."),
    }
    _STATS: ClassVar[dict[str, tuple[Any, ...]]] = {
        "total_query_count": ("pgbouncer_stats_queries_pooled_total", "Queries pooled.", 1),
        "total_xact_count": ("pgbouncer_stats_sql_transactions_pooled_total",
                             "Transactions pooled.", 1),
        "total_query_time": ("pgbouncer_stats_queries_duration_seconds_total",
                             "Time spent in queries.", 1e-6),
        "total_wait_time": ("pgbouncer_stats_client_wait_seconds_total",
                            "Time clients waited for a server.", 1e-6),
        "total_received": ("pgbouncer_stats_received_bytes_total", "Bytes received.", 1),
        "total_sent": ("pgbouncer_stats_sent_bytes_total", "Bytes sent.", 1),
    }

    def scrape(self, out: Samples) -> None:
        for row in self._rows("SHOW POOLS"):
            labels = {"target": self.name, "database": row["database"], "user": row["user"]}
            for col, (name, doc) in self._POOLS.items():
                if col in row:
                    out.gauge(name, doc, float(row[col]), **labels)
            wait = float(row.get("maxwait", 0)) + float(row.get("maxwait_us", 0)) / 1e6
            out.gauge("pgbouncer_pools_client_maxwait_seconds",
                      "Longest wait of a client in the queue.", wait, **labels)
        for row in self._rows("SHOW STATS"):
            labels = {"target": self.name, "database": row["database"]}
            for col, (name, doc, scale) in self._STATS.items():
                if col in row:
                    out.counter(name, doc, float(row[col]) * scale, **labels)
