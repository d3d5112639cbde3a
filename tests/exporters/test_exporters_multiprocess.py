"""Multiprocess mode (PROMETHEUS_MULTIPROC_DIR) in real child processes: no deadlock in the GC
hook, per-worker series that survive aggregation, dead workers' gauges and files cleaned up."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest
from metrics_text import value


def run_worker(folder: Path, code: str, timeout: float = 60) -> dict:
    """Run ``code`` in a fresh interpreter in multiprocess mode; returns what it printed as JSON
    (its pid at least)."""
    script = "import json, os\n" + textwrap.dedent(code) + \
        "\nprint(json.dumps({'pid': os.getpid(), **globals().get('out', {})}))\n"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PROMETHEUS_MULTIPROC_DIR":
                                                str(folder)})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def merged(folder: Path) -> str:
    """What the app serves: the multiprocess aggregate of ``folder``, read in a fresh process
    (this test process is not in multiprocess mode)."""
    return run_worker(folder, """
        from prometheus_client import generate_latest
        from watchkeeper_exporters import metrics_registry
        out = {"text": generate_latest(metrics_registry()).decode()}
    """)["text"]


def test_gc_pauses_never_deadlock_on_the_multiprocess_lock(tmp_path) -> None:
    """A collection that starts while the multiprocess lock is held (creating label children)
    used to hang the process inside the GC callback."""
    try:
        run_worker(tmp_path, """
            import gc
            from watchkeeper_exporters import JobMetrics, install_runtime_metrics
            install_runtime_metrics()
            gc.set_threshold(50)
            for i in range(2000):
                JobMetrics(f"job{i}")
            from watchkeeper_exporters._sync import run_hooks_now
            run_hooks_now()
        """, timeout=30)
    except subprocess.TimeoutExpired:
        pytest.fail("the worker hung: GC callback waiting for the multiprocess lock")
    assert value(merged(tmp_path), "python_gc_pause_seconds_count", generation="0") >= 1


def test_worker_runtime_and_pool_series_exist_in_multiprocess_mode(tmp_path) -> None:
    """Collectors are not served in multiprocess mode; the workers write these values instead
    (summed over live workers)."""
    code = """
        from sqlalchemy import create_engine
        from watchkeeper_exporters import instrument_engine, install_runtime_metrics
        from watchkeeper_exporters._sync import run_hooks_now
        install_runtime_metrics()
        engine = instrument_engine(create_engine("sqlite://", pool_size=3, max_overflow=2,
                                                 poolclass=__import__("sqlalchemy").pool.QueuePool),
                                   pool="main")
        conn = engine.connect()
        run_hooks_now()
    """
    first, second = run_worker(tmp_path, code), run_worker(tmp_path, code)
    text = merged(tmp_path)
    assert value(text, "db_client_connection_max", pool="main") == 10  # 5 per worker
    assert value(text, "db_client_connection_count", pool="main", state="used") == 2
    assert value(text, "python_threads") >= 2
    assert value(text, "process_resident_memory_bytes") > 10 * 2**20
    assert value(text, "process_cpu_seconds_total") > 0
    from watchkeeper_exporters.exposition import child_exit
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path)
    try:
        child_exit(None, SimpleNamespace(pid=first["pid"]))
    finally:
        del os.environ["PROMETHEUS_MULTIPROC_DIR"]
    text = merged(tmp_path)
    assert value(text, "db_client_connection_max", pool="main") == 5  # only the live one
    assert second["pid"] != first["pid"]


def test_dead_workers_queue_depth_disappears(tmp_path) -> None:
    """job_queue_depth is combined over live workers only (gunicorn child_exit)."""
    dead = run_worker(tmp_path, """
        from watchkeeper_exporters import JobMetrics
        JobMetrics("mail").set_queue_depth(40)
    """)
    run_worker(tmp_path, """
        from watchkeeper_exporters import JobMetrics
        JobMetrics("mail").set_queue_depth(3)
    """)
    assert value(merged(tmp_path), "job_queue_depth", job_name="mail") == 40
    from watchkeeper_exporters.exposition import child_exit
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path)
    try:
        child_exit(None, SimpleNamespace(pid=dead["pid"]))
    finally:
        del os.environ["PROMETHEUS_MULTIPROC_DIR"]
    assert value(merged(tmp_path), "job_queue_depth", job_name="mail") == 3


def test_recycled_workers_files_are_merged_and_sums_kept(tmp_path) -> None:
    """Each dead worker's counter/histogram files fold into one archive per type: the folder
    and the scrape stay small however many workers were recycled."""
    from watchkeeper_exporters.exposition import child_exit

    code = """
        from watchkeeper_exporters import JobMetrics
        job = JobMetrics("sweep")
        with job.track():
            pass
    """
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path)
    try:
        for _ in range(12):
            child_exit(None, SimpleNamespace(pid=run_worker(tmp_path, code)["pid"]))
    finally:
        del os.environ["PROMETHEUS_MULTIPROC_DIR"]
    db_files = sorted(p.name for p in tmp_path.glob("*.db"))
    assert db_files == ["counter_archive.db", "histogram_archive.db"], db_files
    text = merged(tmp_path)
    assert value(text, "jobs_processed_total", job_name="sweep", result="success") == 12
    assert value(text, "job_duration_seconds_count", job_name="sweep") == 12
