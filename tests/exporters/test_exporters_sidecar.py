"""The sidecar against real Redis, PostgreSQL and PgBouncer, including the fault cases."""

from __future__ import annotations

import base64
import http.client
import shutil
import ssl
import subprocess
import time
import urllib.request
from pathlib import Path

import bcrypt
import psycopg
import pytest
import redis as redis_py
import servers
from metrics_text import names, samples, value

TIMEOUT = 1.0
SLACK = 1.5  # process scheduling and exposition on a loaded 2-core machine


def scrape(side: servers.Process) -> tuple[str, float]:
    start = time.monotonic()
    status, body = servers.get(side.metrics_url, timeout=TIMEOUT + 5)
    assert status == 200
    return body, time.monotonic() - start


def test_serves_redis_postgres_and_pgbouncer(redis, postgres, pgbouncer) -> None:
    client = redis_py.Redis.from_url(redis.url)
    client.set("k", "v")
    client.get("k")
    client.get("absent")
    with psycopg.connect(postgres.dsn()) as conn:
        conn.execute("SELECT count(*) FROM pg_class").fetchall()
    with psycopg.connect(pgbouncer.app_dsn(), prepare_threshold=None) as conn:
        conn.execute("SELECT 1").fetchall()
    with servers.sidecar("--redis", f"sessions={redis.url}", "--postgres", f"main={postgres.dsn()}",
                         "--pgbouncer", f"bouncer={pgbouncer.admin_dsn()}") as side:
        body, _ = scrape(side)
        assert servers.get(side.base_url + "/healthz") == (200, "ok\n")
    assert value(body, "redis_up", target="sessions") == 1
    assert value(body, "pg_up", target="main") == 1
    assert value(body, "pgbouncer_up", target="bouncer") == 1
    assert value(body, "cache_hits_total", cache="sessions") >= 1
    assert value(body, "cache_misses_total", cache="sessions") >= 1
    assert value(body, "redis_commands_total", target="sessions", cmd="get") >= 2
    assert value(body, "pg_settings_max_connections", target="main") == 50
    assert value(body, "pg_stat_activity_count", target="main", datname="app",
                 state="active") >= 1
    assert value(body, "pg_stat_database_blks_hit", target="main", datname="app") > 0
    assert value(body, "pgbouncer_pools_server_idle_connections", target="bouncer",
                 database="app", user="watch") is not None
    assert value(body, "pgbouncer_stats_queries_pooled_total", target="bouncer",
                 database="app") >= 1
    assert {"redis_memory_used_bytes", "redis_memory_max_bytes", "redis_evicted_keys_total",
            "redis_expired_keys_total", "redis_connected_clients", "redis_blocked_clients",
            "redis_rejected_connections_total", "pg_stat_activity_max_tx_duration",
            "pg_stat_activity_waiting_count", "pg_stat_database_deadlocks",
            "pg_stat_database_blks_read", "pg_stat_statements_seconds_total",
            "pg_stat_statements_calls_total", "pgbouncer_pools_client_active_connections",
            "pgbouncer_pools_client_waiting_connections",
            "pgbouncer_pools_server_active_connections",
            "pgbouncer_pools_client_maxwait_seconds", "process_resident_memory_bytes",
            "watchkeeper_exporter_scrape_duration_seconds",
            "watchkeeper_exporter_scrape_errors_total"} <= names(body)
    assert "# TYPE pg_stat_database_blks_hit counter" in body  # postgres_exporter's name


def test_pg_stat_statements_is_bounded_to_top_n(postgres) -> None:
    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        for i in range(6):
            conn.execute(f"SELECT {i} AS c{i}")
    with servers.sidecar("--postgres", f"main={postgres.dsn()}", "--top-queries", "2") as side:
        body, _ = scrape(side)
    queryids = {labels for (name, labels) in samples(body)
                if name == "pg_stat_statements_calls_total"}
    assert len(queryids) == 3
    assert value(body, "pg_stat_statements_calls_total", target="main", queryid="other") >= 4


def test_redis_down_at_start_then_up_then_killed_then_back() -> None:
    redis = servers.RedisServer()
    try:
        with servers.sidecar("--redis", f"r={redis.url}", "--timeout", f"{TIMEOUT}s") as side:
            body, _ = scrape(side)
            assert value(body, "redis_up", target="r") == 0
            redis.start()
            body, _ = scrape(side)
            assert value(body, "redis_up", target="r") == 1
            redis.kill()
            body, elapsed = scrape(side)
            assert value(body, "redis_up", target="r") == 0
            assert elapsed < TIMEOUT + SLACK
            assert value(body, "watchkeeper_exporter_scrape_errors_total", target="r") == 2
            redis.start()
            body, _ = scrape(side)
            assert value(body, "redis_up", target="r") == 1
            assert "is up again" in side.stderr()
    finally:
        redis.stop()


def test_postgres_refusing_auth_is_down_and_never_leaks_the_password(postgres, tmp_path) -> None:
    wrong = "Wr0ng-Secret-5517"
    secret_file = tmp_path / "pw"
    secret_file.write_text("File-Secret-8842\n")
    bad_url = postgres.dsn(password=wrong)
    with servers.sidecar("--postgres", f"bad={bad_url}",
                         "--postgres", f"badfile={postgres.dsn(password='x')}",
                         "--password-file", f"badfile={secret_file}",
                         "--postgres", bad_url) as side:
        body, _ = scrape(side)
        log = side.stderr()
    default_name = f"127.0.0.1:{postgres.port}/app"
    for target in ("bad", "badfile", default_name):
        assert value(body, "pg_up", target=target) == 0
    assert "password authentication failed" in log
    for secret in (wrong, "File-Secret-8842"):
        assert secret not in body
        assert secret not in log


def test_redis_password_from_file_and_wrong_password(tmp_path) -> None:
    redis = servers.RedisServer(password="Redis-Secret-3190")
    redis.start()
    try:
        (tmp_path / "good").write_text("Redis-Secret-3190\n")
        (tmp_path / "bad").write_text("Redis-Wrong-6604\n")
        with servers.sidecar("--redis", f"good={redis.url}", "--redis", f"bad={redis.url}",
                             "--password-file", f"good={tmp_path / 'good'}",
                             "--password-file", f"bad={tmp_path / 'bad'}") as side:
            body, _ = scrape(side)
            log = side.stderr()
    finally:
        redis.stop()
    assert value(body, "redis_up", target="good") == 1
    assert value(body, "redis_up", target="bad") == 0
    assert "target bad (redis) is down" in log
    for secret in ("Redis-Secret-3190", "Redis-Wrong-6604"):
        assert secret not in body
        assert secret not in log


def test_silent_targets_never_block_the_scrape(redis) -> None:
    with servers.silent_server() as port:
        hung = f"127.0.0.1:{port}"
        with servers.sidecar("--redis", f"ok={redis.url}", "--redis", f"r=redis://{hung}",
                             "--postgres", f"p=postgresql://u:pw@{hung}/db",
                             "--pgbouncer", f"b=postgresql://u:pw@{hung}/pgbouncer",
                             "--timeout", f"{TIMEOUT}s") as side:
            for _ in range(3):  # later scrapes join the stuck ones instead of piling up
                body, elapsed = scrape(side)
                assert elapsed < TIMEOUT + SLACK
                assert value(body, "redis_up", target="ok") == 1
                for kind, target in (("redis", "r"), ("pg", "p"), ("pgbouncer", "b")):
                    assert value(body, f"{kind}_up", target=target) == 0


def _self_signed(tmp: Path) -> Path:
    if shutil.which("openssl") is None:
        pytest.skip("openssl command not installed")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(tmp / "key.pem"), "-out", str(tmp / "cert.pem")],
                   check=True, capture_output=True)
    return tmp / "cert.pem"


def test_web_config_tls_and_bcrypt_basic_auth(redis, tmp_path) -> None:
    cert = _self_signed(tmp_path)
    # htpasswd writes $2y$ hashes; exporter-toolkit files carry them, so accept them too.
    hashed = "$2y$" + bcrypt.hashpw(b"hunter2", bcrypt.gensalt(4)).decode()[4:]
    (tmp_path / "web.yml").write_text(
        "tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n"
        f"basic_auth_users:\n  prom: '{hashed}'\n")
    context = ssl.create_default_context(cafile=str(cert))

    def fetch(path: str, auth: str | None = None) -> int:
        request = urllib.request.Request(side.base_url + path)
        if auth:
            request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
        try:
            with urllib.request.urlopen(request, context=context, timeout=10) as resp:
                return resp.status
        except urllib.error.HTTPError as exc:
            return exc.code

    with servers.sidecar("--redis", redis.url, "--web-config", str(tmp_path / "web.yml"),
                         tls=True) as side:
        assert fetch("/metrics") == 401
        assert fetch("/metrics", "prom:wrong") == 401
        assert fetch("/metrics", "prom:hunter2") == 200
        assert fetch("/metrics", "prom:hunter2") == 200  # cached verification path
        assert fetch("/healthz") == 200
        with pytest.raises((OSError, http.client.HTTPException)):  # plain HTTP is refused
            urllib.request.urlopen(side.base_url.replace("https", "http") + "/healthz",
                                   timeout=5)


def test_answers_within_the_scrapers_timeout_header(redis) -> None:
    """--timeout is 10 s, but a scraper that gives up after 1.5 s gets its answer in time, with
    the hung target down and the reason. The sidecar stops waiting for the hung target at
    its budget (the header less its margin, 1.3 s): timed where it stops (the target's
    scrape duration), which machine load cannot stretch past the header; the answer, timed
    by the client, also carries the client's own scheduling on a loaded machine (SLACK),
    still far below the 10 s it would take without the header."""
    header, budget = 1.5, 1.3
    with servers.silent_server() as port, servers.sidecar(
            "--redis", f"ok={redis.url}", "--redis", f"hung=redis://127.0.0.1:{port}",
            "--timeout", "10s") as side:
        request = urllib.request.Request(
            side.metrics_url, headers={"X-Prometheus-Scrape-Timeout-Seconds": str(header)})
        start = time.monotonic()
        with urllib.request.urlopen(request, timeout=20) as response:
            body = response.read().decode()
        elapsed = time.monotonic() - start
    waited = value(body, "watchkeeper_exporter_scrape_duration_seconds", target="hung")
    assert budget <= waited < header, waited  # waited its budget, stopped before the header
    assert elapsed < header + SLACK, elapsed
    assert value(body, "redis_up", target="ok") == 1
    assert value(body, "redis_up", target="hung") == 0
    assert value(body, "watchkeeper_exporter_target_down_reason", target="hung",
                 reason="timeout") == 1
    assert value(body, "watchkeeper_exporter_target_down_reason", target="ok",
                 reason="timeout") is None


def test_prometheus_with_a_short_scrape_timeout_sees_the_hung_target_down(redis,
                                                                         tmp_path) -> None:
    """A real Prometheus (scrape_timeout 2s) against a sidecar whose own timeout is longer:
    the scrape succeeds (up 1) and the silent target is reported down."""
    import yaml

    with servers.silent_server() as port, servers.sidecar(
            "--redis", f"ok={redis.url}", "--redis", f"hung=redis://127.0.0.1:{port}",
            "--timeout", "8s") as side:
        config = tmp_path / "prometheus.yml"
        config.write_text(yaml.safe_dump({
            "global": {"scrape_interval": "3s", "scrape_timeout": "2s"},
            "scrape_configs": [{"job_name": "side", "static_configs": [
                {"targets": [f"127.0.0.1:{side.port}"]}]}]}))
        prometheus = servers.prometheus_daemon(config).start()
        try:
            deadline = time.monotonic() + 30
            found: dict[str, float] = {}
            while time.monotonic() < deadline and len(found) < 3:
                for query in ('up{job="side"}', 'redis_up{target="hung"}',
                              'watchkeeper_exporter_target_down_reason{target="hung"}'):
                    url = f"{prometheus.url}/api/v1/query?query=" + urllib.request.quote(query)
                    with urllib.request.urlopen(url, timeout=5) as response:
                        result = __import__("json").load(response)["data"]["result"]
                    if result:
                        found[query] = float(result[0]["value"][1])
                time.sleep(0.5)
        finally:
            prometheus.stop()
    assert found == {'up{job="side"}': 1.0, 'redis_up{target="hung"}': 0.0,
                     'watchkeeper_exporter_target_down_reason{target="hung"}': 1.0}
