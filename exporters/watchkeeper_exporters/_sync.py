"""Moving values into metrics off the request path: at scrape time, or from a worker thread.

Some values are cheap to read but must not be written where they arise: a GC pause is known
inside a ``gc`` callback, which may run while the same thread holds prometheus-client's
multiprocess lock (writing there deadlocks the worker); ``lru_cache`` counts hits itself;
threads, memory and pool sizes only exist in the process that has them. Such sources register
a *hook* that copies them into metrics:

* single process: the hooks of a registry run at the start of each scrape of that registry
  (a collector registered before the metrics it feeds, so the scrape sees fresh values);
* multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``): the scraping worker cannot see the other
  workers' memory, so every process runs its hooks from a daemon thread every
  ``WATCHKEEPER_SYNC_SECONDS`` (default 1) and once at exit; the thread is restarted in a
  forked child.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.registry import Collector

Hook = Callable[[], None]
INTERVAL_ENV = "WATCHKEEPER_SYNC_SECONDS"
log = logging.getLogger("watchkeeper_exporters")


def multiprocess_enabled() -> bool:
    """Whether prometheus-client writes values to per-process files (read at its import)."""
    from prometheus_client import values

    return bool(getattr(values.ValueClass, "_multiprocess", False))


def _run(hooks: list[Hook]) -> None:
    for hook in list(hooks):
        try:
            hook()
        except Exception:  # one broken source must not fail the scrape or stop the thread
            log.exception("watchkeeper metrics hook %r failed", hook)


class _SyncCollector(Collector):
    """Runs the registry's hooks when scraped; exposes nothing itself."""

    def __init__(self) -> None:
        self.hooks: list[Hook] = []

    def collect(self) -> Iterator[Any]:
        _run(self.hooks)
        return iter(())


class _Ticker:
    """The per-process hook thread of multiprocess mode."""

    def __init__(self) -> None:
        self.hooks: list[Hook] = []
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()

    def add(self, hook: Hook) -> None:
        with self._lock:
            self.hooks.append(hook)
            self._ensure_thread()

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._loop, name="watchkeeper-sync",
                                            daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        interval = float(os.environ.get(INTERVAL_ENV) or 1.0)
        while not self._stop.wait(interval):
            _run(self.hooks)

    def run_now(self) -> None:
        _run(self.hooks)

    def after_fork(self) -> None:
        """A forked child has no threads: start its own (the parent's lock may be held)."""
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = None
        if self.hooks:
            self._ensure_thread()


_ticker = _Ticker()
_collectors: weakref.WeakKeyDictionary[CollectorRegistry, _SyncCollector] = (
    weakref.WeakKeyDictionary()
)
_lock = threading.Lock()
os.register_at_fork(after_in_child=_ticker.after_fork)
atexit.register(_ticker.run_now)  # a recycled worker's last values still land in its files


def ensure_collector(registry: CollectorRegistry | None) -> None:
    """Register the registry's hook runner; call before creating the metrics hooks feed."""
    reg = REGISTRY if registry is None else registry
    with _lock:
        if reg not in _collectors:
            collector = _SyncCollector()
            reg.register(collector)
            _collectors[reg] = collector


def add_hook(registry: CollectorRegistry | None, hook: Hook) -> None:
    """Run ``hook`` before each scrape of ``registry`` (single process) or periodically and at
    exit in this process (multiprocess mode)."""
    if multiprocess_enabled():
        _ticker.add(hook)
        return
    ensure_collector(registry)
    _collectors[REGISTRY if registry is None else registry].hooks.append(hook)


def run_hooks_now() -> None:
    """Run this process' multiprocess hooks immediately (tests, shutdown paths)."""
    _ticker.run_now()
