"""Runtime collector (threads, asyncio tasks, GC pauses) and the background-job helper."""

from __future__ import annotations

import asyncio
import gc
import threading

import pytest
from metrics_text import value
from prometheus_client import CollectorRegistry
from watchkeeper_exporters.jobs import JobMetrics
from watchkeeper_exporters.runtime import GCPauseRecorder, install_runtime_metrics


def test_threads_follow_live_threads() -> None:
    registry = CollectorRegistry()
    install_runtime_metrics(registry)
    before = value(registry, "python_threads")
    release = threading.Event()
    worker = threading.Thread(target=release.wait)
    worker.start()
    try:
        assert value(registry, "python_threads") == before + 1
    finally:
        release.set()
        worker.join()
    assert value(registry, "python_threads") == before


def test_asyncio_tasks_of_watched_loop() -> None:
    registry = CollectorRegistry()
    collector = install_runtime_metrics(registry)
    assert install_runtime_metrics(registry) is collector  # once per registry

    async def main() -> float | None:
        collector.watch_loop()
        sleepers = [asyncio.create_task(asyncio.sleep(10)) for _ in range(3)]
        await asyncio.sleep(0)
        seen = value(registry, "python_asyncio_tasks")
        for task in sleepers:
            task.cancel()
        return seen

    assert asyncio.run(main()) == 4  # three sleepers and main itself
    assert value(registry, "python_asyncio_tasks") == 0  # the loop is closed


def test_gc_pauses_are_recorded_by_generation() -> None:
    registry = CollectorRegistry()
    recorder = GCPauseRecorder(registry)
    recorder.install()
    try:
        gc.collect(2)
        gc.collect(0)
    finally:
        recorder.uninstall()
    assert value(registry, "python_gc_pause_seconds_count", generation="2") >= 1
    assert value(registry, "python_gc_pause_seconds_count", generation="0") >= 1
    assert value(registry, "python_gc_pause_seconds_sum", generation="2") > 0


def test_job_metrics_results_duration_and_depth() -> None:
    registry = CollectorRegistry()
    emails = JobMetrics("emails", registry=registry)

    @emails
    def send(ok: bool) -> None:
        if not ok:
            raise ValueError("smtp down")

    send(True)
    send(True)
    with pytest.raises(ValueError):
        send(False)
    emails.set_queue_depth(7)
    processed = "jobs_processed_total"
    assert value(registry, processed, job_name="emails", result="success") == 2
    assert value(registry, processed, job_name="emails", result="error") == 1
    assert value(registry, "job_duration_seconds_count", job_name="emails") == 3
    assert value(registry, "job_queue_depth", job_name="emails") == 7
    emails.queue_depth_from(lambda: 3)
    assert value(registry, "job_queue_depth", job_name="emails") == 3


def test_async_jobs_are_timed_until_they_finish_and_their_errors_count() -> None:
    registry = CollectorRegistry()
    sync = JobMetrics("sync_job", registry=registry)
    job = JobMetrics("async_job", registry=registry)

    @job
    async def slow_then_fail() -> None:
        await asyncio.sleep(0.3)
        raise RuntimeError("failed after 0.3 s")

    async def with_block() -> None:
        async with job.track():
            await asyncio.sleep(0.01)

    with pytest.raises(RuntimeError):
        asyncio.run(slow_then_fail())
    asyncio.run(with_block())
    processed = "jobs_processed_total"
    assert value(registry, processed, job_name="async_job", result="error") == 1
    assert value(registry, processed, job_name="async_job", result="success") == 1
    assert value(registry, "job_duration_seconds_sum", job_name="async_job") >= 0.3
    assert value(registry, "job_duration_seconds_bucket", job_name="async_job", le="0.1") == 1
    with sync.track():
        pass
    assert value(registry, processed, job_name="sync_job", result="success") == 1
