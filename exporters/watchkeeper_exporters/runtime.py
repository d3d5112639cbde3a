"""Python runtime metrics next to prometheus-client's ``process_*`` metrics.

* ``python_threads``: live threads.
* ``python_asyncio_tasks``: pending tasks of the event loops handed to :func:`watch_loop`.
* ``python_gc_pause_seconds{generation}``: collection pauses timed through ``gc.callbacks``.
* ``python_cpu_available_cores``: CPUs this process may use: the cgroup's CPU limit
  (``cpu.max`` or v1 ``cfs_quota_us``) when set, else the CPUs it may run on. The CPU
  budget divides ``process_cpu_seconds_total``'s rate by it.

In multiprocess mode collectors are not served, so each worker writes these values and its
``process_*`` values to its files instead (see :class:`WorkerRuntime`).
"""

from __future__ import annotations

import asyncio
import gc
import os
import threading
import weakref
from collections import deque
from collections.abc import Iterator
from time import perf_counter
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, ProcessCollector
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from . import _metrics, _sync

#: Pauses kept between flushes; beyond it the oldest are dropped (nobody is scraping).
_PENDING_LIMIT = 10_000
#: ``process_*`` gauges of the workers in multiprocess mode and how they combine.
_PROCESS_GAUGES = {
    "process_resident_memory_bytes": "livesum",
    "process_virtual_memory_bytes": "livesum",
    "process_open_fds": "livesum",
    "process_max_fds": "livemin",
    "process_start_time_seconds": "livemin",
}


class RuntimeCollector(Collector):
    """Threads and asyncio tasks, read at scrape time (cheap: no bookkeeping per task)."""

    def __init__(self) -> None:
        self._loops: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()

    def watch_loop(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Count the tasks of ``loop`` (default: the running loop); held weakly."""
        self._loops.add(loop or asyncio.get_running_loop())

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield GaugeMetricFamily("python_threads", "Live Python threads.",
                                value=threading.active_count())
        yield GaugeMetricFamily("python_cpu_available_cores",
                                "CPUs this process may use (cgroup limit, else affinity).",
                                value=available_cores())
        yield GaugeMetricFamily("python_asyncio_tasks",
                                "Pending asyncio tasks of the watched event loops.",
                                value=self.pending_tasks())

    def pending_tasks(self) -> int:
        return sum(self._pending(loop) for loop in list(self._loops))

    @staticmethod
    def _pending(loop: asyncio.AbstractEventLoop) -> int:
        if loop.is_closed():
            return 0
        for _ in range(3):  # all_tasks iterates a WeakSet another thread may be changing
            try:
                return len(asyncio.all_tasks(loop))
            except RuntimeError:
                continue
        return 0


def _cgroup_limit(root: str = "/sys/fs/cgroup") -> float | None:
    """The cgroup CPU quota in CPUs, or None when there is none (or no cgroup fs)."""
    for quota_file, period_file in ((f"{root}/cpu.max", None),
                                    (f"{root}/cpu/cpu.cfs_quota_us",
                                     f"{root}/cpu/cpu.cfs_period_us")):
        try:
            with open(quota_file) as f:
                fields = f.read().split()
            if period_file is not None:
                with open(period_file) as f:
                    fields.append(f.read().strip())
        except OSError:
            continue
        if len(fields) >= 2 and fields[0] not in ("max", "-1"):
            return int(fields[0]) / int(fields[1])
        return None
    return None


def available_cores(root: str = "/sys/fs/cgroup") -> float:
    """CPUs available to this process: the cgroup limit if lower than its CPU affinity."""
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1)
    limit = _cgroup_limit(root)
    return min(limit, affinity) if limit is not None else float(affinity)


class GCPauseRecorder:
    """Times each collection between the ``start`` and ``stop`` callbacks of ``gc``.

    The callback only appends to a deque: a collection can start while this thread holds
    prometheus-client's process-wide multiprocess lock (e.g. while a new label child is
    created), and observing there would wait for that lock forever. The pauses reach the
    histogram from a sync hook (at scrape time, or from the worker's sync thread).
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        histogram = _metrics.gc_pause(registry)
        self._children = [histogram.labels(str(g)) for g in range(3)]
        self._started: dict[int, float] = {}
        self._pending: deque[tuple[int, float]] = deque(maxlen=_PENDING_LIMIT)
        _sync.add_hook(registry, self.flush)

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started[threading.get_ident()] = perf_counter()
            return
        start = self._started.pop(threading.get_ident(), None)
        if start is not None:
            self._pending.append((info["generation"], perf_counter() - start))

    def flush(self) -> None:
        """Observe the pauses recorded since the last flush."""
        pending, children = self._pending, self._children
        while pending:
            try:
                generation, seconds = pending.popleft()
            except IndexError:
                return
            children[generation].observe(seconds)

    def install(self) -> None:
        if self not in gc.callbacks:
            gc.callbacks.append(self)

    def uninstall(self) -> None:
        if self in gc.callbacks:
            gc.callbacks.remove(self)


class WorkerRuntime:
    """Multiprocess mode: this worker's threads, tasks and ``process_*`` values, written to its
    files by the sync thread, so the aggregate the app serves has them (summed over live
    workers; CPU seconds summed over all workers)."""

    def __init__(self, collector: RuntimeCollector) -> None:
        self._collector = collector
        self._process = ProcessCollector(registry=None)
        self._cpu_seen = 0.0
        self._gauges = {
            "python_threads": _metrics.worker_gauge("python_threads", "Live Python threads "
                                                    "(sum over live workers)."),
            "python_asyncio_tasks": _metrics.worker_gauge(
                "python_asyncio_tasks", "Pending asyncio tasks (sum over live workers)."),
            # the workers share the machine/cgroup: the same value, so the max of them
            "python_cpu_available_cores": _metrics.worker_gauge(
                "python_cpu_available_cores", "CPUs the workers may use (cgroup limit, else "
                "affinity).", mode="livemax"),
        }
        for name, mode in _PROCESS_GAUGES.items():
            self._gauges[name] = _metrics.worker_gauge(name, f"{name} ({mode} over live "
                                                       "workers).", mode=mode)
        self._cpu = _metrics.worker_counter("process_cpu_seconds",
                                            "CPU time of the workers (user + system).")

    def sync(self) -> None:
        values = {"python_threads": threading.active_count(),
                  "python_asyncio_tasks": self._collector.pending_tasks(),
                  "python_cpu_available_cores": available_cores()}
        for family in self._process.collect():
            for sample in family.samples:
                values[sample.name] = sample.value
        cpu = values.pop("process_cpu_seconds_total", None)
        if cpu is not None and cpu > self._cpu_seen:
            self._cpu.inc(cpu - self._cpu_seen)
            self._cpu_seen = cpu
        for name, gauge in self._gauges.items():
            if name in values:
                gauge.set(values[name])


_installed: weakref.WeakKeyDictionary[CollectorRegistry, tuple[RuntimeCollector, GCPauseRecorder]]
_installed = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def install_runtime_metrics(registry: CollectorRegistry | None = None) -> RuntimeCollector:
    """Register the runtime collector and the GC pause hook once per registry.

    Returns the collector so that apps can :meth:`RuntimeCollector.watch_loop` their loop.
    """
    reg = REGISTRY if registry is None else registry
    with _lock:
        if reg not in _installed:
            collector, recorder = RuntimeCollector(), GCPauseRecorder(reg)
            if _sync.multiprocess_enabled():
                _sync.add_hook(reg, WorkerRuntime(collector).sync)
            else:
                reg.register(collector)
            recorder.install()
            _installed[reg] = (collector, recorder)
        return _installed[reg][0]


def watch_running_loop(registry: CollectorRegistry | None = None) -> None:
    """Call from inside a running loop (e.g. an ASGI lifespan startup) to count its tasks."""
    install_runtime_metrics(registry).watch_loop()
