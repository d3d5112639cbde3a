"""The sample apps: every contract name exposed, and gunicorn multiprocess aggregation."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import servers
from metrics_text import names, value

#: The python profile's names (see docs/exporters.md), split by who exposes them.
APP_NAMES = {
    "http_request_duration_seconds_bucket", "db_query_duration_seconds_bucket",
    "cache_hits_total", "cache_misses_total", "process_resident_memory_bytes",
    "python_threads", "python_asyncio_tasks", "python_gc_pause_seconds_bucket",
    "db_client_connection_count", "db_client_connection_max",
    "db_client_connection_wait_time_seconds_bucket", "db_client_connection_timeouts_total",
    "job_duration_seconds_bucket", "jobs_processed_total", "job_queue_depth",
}
SIDECAR_NAMES = {
    "cache_hits_total", "cache_misses_total", "redis_up", "pg_up", "pgbouncer_up",
    "watchkeeper_exporter_scrape_duration_seconds", "watchkeeper_exporter_scrape_errors_total",
}


def test_instrumented_stack_exposes_every_contract_name() -> None:
    with servers.instrumented_stack() as stack:
        app_status, app_body = servers.get(stack.app_metrics_url)
        side_status, side_body = servers.get(stack.sidecar_metrics_url)
    assert (app_status, side_status) == (200, 200)
    assert names(app_body) >= APP_NAMES
    assert names(side_body) >= SIDECAR_NAMES
    route = {"method": "GET", "route": "/items/{item_id}", "code": "200"}
    assert value(app_body, "http_request_duration_seconds_count", **route) == 3
    assert value(app_body, "http_request_duration_seconds_count", method="GET",
                 route="/boom", code="500") == 1
    assert value(app_body, "cache_hits_total", cache="items_l1") == 1
    assert value(app_body, "cache_misses_total", cache="items_l2") == 2
    assert value(app_body, "jobs_processed_total", job_name="reindex", result="error") == 1
    assert value(app_body, "db_client_connection_max", pool="main") == 10
    for kind, target in (("redis", "sessions"), ("pg", "main"), ("pgbouncer", "bouncer")):
        assert value(side_body, f"{kind}_up", target=target) == 1


def test_metrics_on_their_own_port() -> None:
    from prometheus_client import CollectorRegistry
    from watchkeeper_exporters import JobMetrics, serve_metrics

    registry = CollectorRegistry()
    JobMetrics("own_port", registry=registry).set_queue_depth(4)
    port = servers.free_port()
    server, thread = serve_metrics(port, registry=registry)
    try:
        status, body = servers.get(f"http://127.0.0.1:{port}/metrics")
    finally:
        server.shutdown()
        thread.join()
    assert status == 200
    assert value(body, "job_queue_depth", job_name="own_port") == 4


def test_gunicorn_workers_aggregate_through_multiprocess_mode(tmp_path) -> None:
    port = servers.free_port()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", str(servers.EXAMPLES / "gunicorn.conf.py"),
         "--chdir", str(servers.EXAMPLES), "-b", f"127.0.0.1:{port}", "wsgi_app:app"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        servers.wait_for_port(port, proc=proc)
        deadline = time.monotonic() + 15
        while len(list(tmp_path.glob("histogram_*.db"))) < 2:  # both workers booted
            assert time.monotonic() < deadline, "gunicorn workers did not start"
            time.sleep(0.05)
        for i in range(20):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/fib/{i % 5}", timeout=10):
                pass
        deadline = time.monotonic() + 15  # a slow start-up must not eat the sync wait
        while True:  # lru_cache counts reach the files from each worker's sync thread (1 s)
            _, body = servers.get(f"http://127.0.0.1:{port}/metrics")
            lookups = (value(body, "cache_hits_total", cache="fib") or 0) + \
                (value(body, "cache_misses_total", cache="fib") or 0)
            if lookups >= 20 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        # before the stop: then child_exit merges the workers' files into the archive
        worker_pids = {p.stem.rsplit("_", 1)[1] for p in tmp_path.glob("histogram_*.db")}
    finally:
        servers._stop(proc)
    assert len(worker_pids) == 2  # both workers wrote samples...
    assert value(body, "http_request_duration_seconds_count", method="GET",
                 route="/fib/{n}", code="200") == 20  # ...and one scrape sums them
    hits = value(body, "cache_hits_total", cache="fib") or 0
    misses = value(body, "cache_misses_total", cache="fib") or 0
    # Each worker has its own cache: every fib(0..4) misses once in at least one worker and
    # at most once per worker (5..10 misses); each of the 20 requests is one lookup, and a
    # miss of n >= 2 adds two (fib(n-1), fib(n-2)): at most 3 such misses per worker.
    assert 5 <= misses <= 10
    assert hits + misses in range(20, 20 + 2 * 6 + 1, 2)
    assert value(body, "python_threads") >= 2  # per-worker series, summed over workers


#: gunicorn's worker timeout in the recycling test. A start of its app takes ~3 s on a quiet
#: machine and was seen at 8 s at load 8 (an 8 s timeout killed healthy workers); a hung
#: worker never finishes, so the test also waits for every started worker to load the app.
WORKER_TIMEOUT = 30
#: A request still unanswered after twice the worker timeout was dropped or is stuck behind a
#: hung master. Shorter is not "lost": with both workers recycled at once, a request waits in
#: the listen backlog for a new worker (the old one's exit, child_exit's merge of its files,
#: the new one's start): 7-8 s at load 6, over 12 s at load 8-10.
CLIENT_TIMEOUT = 2 * WORKER_TIMEOUT
_BOOTED = re.compile(r"Booting worker with pid: (\d+)")
_LOADED = re.compile(r"recycling_app: worker (\d+) loaded the app")


def _fetch(url: str, timeout: float) -> tuple[str, float, str]:
    """One request: (what happened, seconds taken, body); what happened is ``"200 pid=N"`` or
    the status/exception, so a failure says which worker answered or how the request was lost."""
    start = time.monotonic()
    body = ""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = response.read().decode()
            outcome = f"{response.status} pid={response.headers.get('X-Worker-Pid')}"
    except urllib.error.HTTPError as error:
        outcome = f"HTTP {error.code} pid={error.headers.get('X-Worker-Pid')}"
    except OSError as error:  # a hung worker shows up as a timeout or reset
        outcome = repr(error)
    return outcome, time.monotonic() - start, body


def _not_loaded(log: Path) -> set[str]:
    """Workers gunicorn started that have not (yet) loaded the app."""
    text = log.read_text()
    return set(_BOOTED.findall(text)) - set(_LOADED.findall(text))


def _recycling_report(timeline: list[tuple[str, float, str, float]], log: str) -> str:
    """The requests around each failure (when sent, how long, what came back) and gunicorn's
    log of worker starts, exits and timeouts."""
    failed = {n for n, (*_, outcome, _) in enumerate(timeline) if not outcome.startswith("200 ")}
    near = {j for n in failed for j in range(n - 3, n + 4)}
    lines = [f"{what} at {sent:.2f}s took {took:.2f}s: {outcome}"
             for n, (what, sent, outcome, took) in enumerate(timeline) if n in near]
    return "\n".join(["requests near failures:", *lines, "gunicorn log:", log[-4000:]])


def test_gunicorn_worker_recycling_never_hangs_and_keeps_the_folder_small(tmp_path) -> None:
    """Under gunicorn with max_requests recycling, worker starts create thousands of label
    children while collections run: no worker may hang (WORKER TIMEOUT, or started and never
    loaded the app), no request may be lost, sums survive the recycled workers and their
    files are merged."""
    folder = tmp_path / "multiproc"
    folder.mkdir()
    port = servers.free_port()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(folder),
           "PYTHONPATH": os.pathsep.join([str(servers.EXAMPLES), str(Path(__file__).parent)])}
    log = tmp_path / "gunicorn.log"
    with log.open("w") as errors:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", str(servers.EXAMPLES / "gunicorn.conf.py"),
             "-b", f"127.0.0.1:{port}", "--max-requests", "20",
             "--timeout", str(WORKER_TIMEOUT), "--graceful-timeout", "2",
             "--access-logfile", "-", "--access-logformat", "%(t)s [%(p)s] %(r)s %(s)s %(L)ss",
             "recycling_app:app"],
            stdout=errors, stderr=errors, env=env)
        timeline: list[tuple[str, float, str, float]] = []
        body = ""
        try:
            servers.wait_for_port(port, proc=proc, timeout=30)
            began = time.monotonic()
            for i in range(105):
                sent = time.monotonic() - began
                outcome, took, _ = _fetch(f"http://127.0.0.1:{port}/fib/{i % 7}", CLIENT_TIMEOUT)
                timeline.append((f"#{i}", sent, outcome, took))
                if not outcome.startswith("200 "):
                    break  # the report shows what led to it; a hung server would take hours
            else:
                time.sleep(1.5)  # the last workers' sync thread copies their counts
                sent = time.monotonic() - began
                outcome, took, body = _fetch(f"http://127.0.0.1:{port}/metrics", CLIENT_TIMEOUT)
                timeline.append(("/metrics", sent, outcome, took))
            deadline = time.monotonic() + WORKER_TIMEOUT  # then gunicorn kills a stuck one
            while _not_loaded(log) and time.monotonic() < deadline:
                time.sleep(0.2)
            stuck = _not_loaded(log)
        finally:
            servers._stop(proc, timeout=10)
    text = log.read_text()
    report = _recycling_report(timeline, text)
    assert "WORKER TIMEOUT" not in text, report
    assert not stuck, f"workers {sorted(stuck)} never loaded the app\n{report}"
    assert all(outcome.startswith("200 ") for *_, outcome, _ in timeline), report
    assert len(timeline) == 106, report
    assert text.count("Booting worker") >= 6, text[-2000:]  # workers really were recycled
    assert value(body, "http_request_duration_seconds_count", method="GET",
                 route="/fib/{n}", code="200") == 105
    db_files = list(folder.glob("*.db"))
    assert len(db_files) <= 12, sorted(p.name for p in db_files)  # 2 live workers + archives
