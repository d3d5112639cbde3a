"""Scrapes every target concurrently, each bounded by the per-target timeout.

A target that is down, slow or refuses auth yields ``<kind>_up 0`` and an error count, never a
failed or blocked scrape. A scrape still running when the next one starts is joined rather
than duplicated, so a hung target ties up one thread, not one per scrape.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from time import perf_counter

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest

from .samples import Samples, render
from .secrets import scrub
from .targets import Target

log = logging.getLogger("watchkeeper_exporter")


class Exporter:
    def __init__(self, targets: list[Target], timeout: float) -> None:
        self.targets = targets
        self.timeout = timeout
        self._pool = ThreadPoolExecutor(max_workers=max(2, 2 * len(targets)),
                                        thread_name_prefix="scrape")
        self._inflight: dict[str, Future[tuple[Samples, float]]] = {}
        self._errors = {t.name: 0 for t in targets}
        self._was_up: dict[str, bool] = {}
        self._lock = threading.Lock()
        self._process = CollectorRegistry(auto_describe=False)
        ProcessCollector(registry=self._process)

    def _scrape_one(self, target: Target) -> tuple[Samples, float]:
        start = perf_counter()
        out = Samples()
        try:
            target.scrape(out)
        except BaseException:
            target.close()
            raise
        return out, perf_counter() - start

    def _submit(self, target: Target) -> Future[tuple[Samples, float]]:
        with self._lock:
            future = self._inflight.get(target.name)
            if future is None or future.done():
                future = self._pool.submit(self._scrape_one, target)
                self._inflight[target.name] = future
            return future

    def collect(self) -> Samples:
        """One scrape of every target, merged, with up/duration/error series."""
        start = perf_counter()
        futures = [(t, self._submit(t)) for t in self.targets]
        wait([f for _, f in futures], timeout=self.timeout)
        merged = Samples()
        for target, future in futures:
            self._account(target, future, perf_counter() - start, merged)
        return merged

    def _account(self, target: Target, future: Future[tuple[Samples, float]], elapsed: float,
                 merged: Samples) -> None:
        up, duration, error = 0, min(elapsed, self.timeout), None
        if not future.done():
            error = f"timed out after {self.timeout:g}s"
        elif future.exception() is not None:
            error = _describe(future.exception(), target)
        else:
            samples, duration = future.result()
            merged.merge(samples)
            up = 1
        if error is not None:
            with self._lock:
                self._errors[target.name] += 1
        self._log_transition(target, error)
        t = target.name
        merged.gauge(f"{target.kind}_up", f"Whether the last scrape of the {target.kind} "
                     "target succeeded.", up, target=t)
        merged.gauge("watchkeeper_exporter_scrape_duration_seconds",
                     "Time the last scrape of the target took.", duration, target=t)
        merged.counter("watchkeeper_exporter_scrape_errors_total",
                       "Failed scrapes of the target.", self._errors[t], target=t)

    def _log_transition(self, target: Target, error: str | None) -> None:
        """Log when a target goes down or comes back, not on every failed scrape."""
        up = error is None
        if self._was_up.get(target.name, True) != up:
            if up:
                log.info("target %s (%s) is up again", target.name, target.kind)
            else:
                log.warning("target %s (%s) is down: %s", target.name, target.kind, error)
        self._was_up[target.name] = up

    def render(self) -> bytes:
        text = render(self.collect().families.values())
        return text.encode() + generate_latest(self._process)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        for target in self.targets:
            target.close()


def _describe(error: BaseException | None, target: Target) -> str:
    """A one-line error message with any credential of the target masked."""
    from .secrets import url_password

    text = f"{type(error).__name__}: {error}".splitlines()[0] if error else "unknown error"
    return scrub(text, [s for s in (target.password, url_password(target.url)) if s])
