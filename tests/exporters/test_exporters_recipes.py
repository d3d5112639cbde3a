"""The FastAPI and Flask/gunicorn recipes of docs/exporters.md, run exactly as written, against
real PostgreSQL and Redis, including their outages."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg
import pytest
import servers
from metrics_text import names, value

DOC = servers.REPO / "docs" / "exporters.md"
RECIPE = re.compile(r"<!-- recipe: (\S+) -->\n```python\n(.*?)```", re.S)
#: What the generated rules for a python service read from the app itself.
APP_SERIES = {
    "http_request_duration_seconds_bucket", "db_query_duration_seconds_bucket",
    "db_client_connection_count", "db_client_connection_max",
    "db_client_connection_wait_time_seconds_bucket", "python_threads",
    "python_gc_pause_seconds_bucket", "process_resident_memory_bytes",
    "process_cpu_seconds_total", "python_cpu_available_cores",
}


def write_recipes(folder: Path) -> dict[str, Path]:
    found = {name: body for name, body in RECIPE.findall(DOC.read_text())}
    assert set(found) >= {"fastapi_app.py", "flask_app.py", "gunicorn.conf.py"}, set(found)
    for name, body in found.items():
        (folder / name).write_text(body)
    return {name: folder / name for name in found}


def seed(pg: servers.Postgres) -> None:
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS items (id int PRIMARY KEY, name text)")
        conn.execute("INSERT INTO items VALUES (1, 'one'), (2, 'two'), (3, 'three') "
                     "ON CONFLICT DO NOTHING")


def fetch(url: str, method: str = "GET", timeout: float = 10) -> int:
    request = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def stop_postgres(pg: servers.Postgres) -> None:
    prefix = servers._unprivileged()[0]
    subprocess.run([*prefix, servers._pg_bin("pg_ctl"), "-D", str(pg.datadir), "-m",
                    "immediate", "-w", "stop"], check=True, stdout=subprocess.DEVNULL)


def test_fastapi_recipe_survives_redis_and_postgres_outages(tmp_path) -> None:
    write_recipes(tmp_path)
    with servers.postgres_server() as pg, servers.redis_server() as redis:
        seed(pg)
        env = {"DATABASE_URL": pg.sqlalchemy_url(), "REDIS_URL": redis.url}
        app = servers.Daemon([sys.executable, "-m", "uvicorn", "fastapi_app:app", "--app-dir",
                              str(tmp_path), "--host", servers.HOST, "--port",
                              str(port := servers.free_port()), "--log-level", "warning"],
                             port, "/metrics", env=env).start()
        try:
            base = app.url
            for i in (1, 2, 3, 1, 2, 3):
                assert fetch(f"{base}/items/{i}") == 200
            assert fetch(f"{base}/items/99") == 404
            assert fetch(f"{base}/reindex", "POST") == 200
            _, body = servers.get(f"{base}/metrics")
            assert names(body) >= APP_SERIES | {"python_asyncio_tasks", "cache_hits_total",
                                                "jobs_processed_total"}, \
                sorted(APP_SERIES - names(body))
            assert value(body, "http_request_duration_seconds_count", method="GET",
                         route="/items/{item_id}", code="200") == 6
            assert value(body, "http_request_duration_seconds_count", method="GET",
                         route="/metrics", code="200") >= 1
            assert value(body, "jobs_processed_total", job_name="reindex",
                         result="success") == 1
            assert value(body, "cache_hits_total", cache="items_l1") == 3

            redis.kill()                                   # Redis outage
            with psycopg.connect(pg.dsn(), autocommit=True) as conn:
                conn.execute("INSERT INTO items VALUES (4, 'four'), (5, 'five')")
            started = time.monotonic()
            assert [fetch(f"{base}/items/{i}") for i in (4, 5)] == [200, 200]
            assert time.monotonic() - started < 5
            _, body = servers.get(f"{base}/metrics")
            assert value(body, "cache_errors_total", cache="items_l2", operation="get") == 2
            assert value(body, "cache_misses_total", cache="items_l2") == 3 + 2 + 1

            stop_postgres(pg)                              # PostgreSQL outage (Redis still down)
            started = time.monotonic()
            assert fetch(f"{base}/items/6", timeout=15) == 500
            assert time.monotonic() - started < 10
            assert fetch(f"{base}/items/1") == 200         # still served from L1
            _, body = servers.get(f"{base}/metrics")
            assert value(body, "http_request_duration_seconds_count", method="GET",
                         route="/items/{item_id}", code="500") == 1
        finally:
            app.stop()


def test_flask_gunicorn_recipe_serves_every_rules_series_from_several_workers(tmp_path) -> None:
    write_recipes(tmp_path)
    folder = tmp_path / "metrics"
    folder.mkdir()
    (folder / "counter_99999.db").write_bytes(b"stale")  # on_starting must wipe it
    with servers.postgres_server() as pg:
        seed(pg)
        port = servers.free_port()
        env = {**os.environ, "DATABASE_URL": pg.sqlalchemy_url(),
               "PROMETHEUS_MULTIPROC_DIR": str(folder)}
        proc = subprocess.Popen([sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py",
                                 "-b", f"{servers.HOST}:{port}", "flask_app:app"],
                                cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            servers.wait_for_port(port, proc=proc, timeout=30)
            base = f"http://{servers.HOST}:{port}"
            for i in range(20):
                assert fetch(f"{base}/items/{1 + i % 3}") == 200
            assert fetch(f"{base}/items/42") == 404
            deadline = time.monotonic() + 10
            while True:  # both workers' sync threads have written their runtime values
                _, body = servers.get(f"{base}/metrics")
                if value(body, "db_client_connection_max", pool="main") == 20 or \
                        time.monotonic() > deadline:
                    break
                time.sleep(0.3)
        finally:
            servers._stop(proc, timeout=10)
    assert names(body) >= APP_SERIES, sorted(APP_SERIES - names(body))
    assert value(body, "db_client_connection_max", pool="main") == 20  # 2 workers x 10
    assert value(body, "http_request_duration_seconds_count", method="GET",
                 route="/items/<int:item_id>", code="200") == 20
    assert value(body, "http_request_duration_seconds_count", method="GET",
                 route="/items/<int:item_id>", code="404") == 1
    assert value(body, "db_query_duration_seconds_count", operation="SELECT", table="items",
                 result="success") == 21
    assert value(body, "process_resident_memory_bytes") > 20 * 2**20


@pytest.mark.parametrize("name", ["fastapi_app.py", "flask_app.py", "gunicorn.conf.py"])
def test_recipes_are_lint_clean(tmp_path, name) -> None:
    path = write_recipes(tmp_path)[name]
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--isolated",
                           "--select", "E,F,W", "--line-length", "100", str(path)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout
