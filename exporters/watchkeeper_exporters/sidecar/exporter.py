"""Scrapes every target concurrently, each bounded by the per-target timeout.

A target that is down, slow or refuses auth yields ``<kind>_up 0`` and an error count, never a
failed or blocked scrape. A scrape still running when the next one starts is joined rather
than duplicated, so a hung target ties up one thread, not one per scrape.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from time import perf_counter

from prometheus_client import CollectorRegistry, ProcessCollector, generate_latest

from .samples import Samples, render
from .secrets import scrub, url_password
from .targets import Target

log = logging.getLogger("watchkeeper_exporter")


@dataclass
class _Result:
    samples: Samples | None
    error: str | None
    seconds: float
    reason: str | None = None


class Exporter:
    """All targets of one sidecar; :meth:`render` is one ``/metrics`` answer."""

    def __init__(self, targets: list[Target], timeout: float) -> None:
        self.targets = targets
        self.timeout = timeout
        self._pool = ThreadPoolExecutor(max_workers=max(2, 2 * len(targets)),
                                        thread_name_prefix="scrape")
        self._inflight: dict[str, Future[_Result]] = {}
        self._errors = {t.name: 0 for t in targets}
        self._was_up: dict[str, bool] = {}
        self._lock = threading.Lock()
        self._process = CollectorRegistry(auto_describe=False)
        ProcessCollector(registry=self._process)

    def _scrape_one(self, target: Target) -> _Result:
        start = perf_counter()
        out = Samples()
        try:
            target.scrape(out)
        except Exception as exc:  # any failure of one target is reported as that target down
            target.close()
            return _Result(None, _describe(exc, target), perf_counter() - start,
                           type(exc).__name__)
        return _Result(out, None, perf_counter() - start)

    def _submit(self, target: Target) -> Future[_Result]:
        with self._lock:
            future = self._inflight.get(target.name)
            if future is None or future.done():
                future = self._pool.submit(self._scrape_one, target)
                self._inflight[target.name] = future
            return future

    def collect(self, budget: float | None = None) -> Samples:
        """One scrape of every target, merged, with up/duration/error series; waits at most
        ``--timeout`` or the scraper's ``budget`` (from its timeout header), if shorter."""
        start = perf_counter()
        limit = self.timeout if budget is None else min(self.timeout, budget)
        futures = [(t, self._submit(t)) for t in self.targets]
        wait([f for _, f in futures], timeout=limit)
        merged = Samples()
        for target, future in futures:
            self._account(target, future, perf_counter() - start, limit, merged)
        return merged

    def _account(self, target: Target, future: Future[_Result], elapsed: float, limit: float,
                 merged: Samples) -> None:
        if future.done():
            result = future.result()
        else:
            why = "" if limit == self.timeout else " (the scraper's timeout)"
            result = _Result(None, f"timed out after {limit:g}s{why}", elapsed, "timeout")
        error, duration = result.error, result.seconds
        up = 0 if result.samples is None else 1
        if result.samples is not None:
            merged.merge(result.samples)
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
        if result.reason is not None:
            merged.gauge("watchkeeper_exporter_target_down_reason",
                         "Why the target's last scrape failed (1 while it is down): timeout, "
                         "or the error's type; the log has the full message.", 1, target=t,
                         reason=result.reason)

    def _log_transition(self, target: Target, error: str | None) -> None:
        """Log when a target goes down or comes back, not on every failed scrape."""
        up = error is None
        if self._was_up.get(target.name, True) != up:
            if up:
                log.info("target %s (%s) is up again", target.name, target.kind)
            else:
                log.warning("target %s (%s) is down: %s", target.name, target.kind, error)
        self._was_up[target.name] = up

    def render(self, budget: float | None = None) -> bytes:
        text = render(self.collect(budget).families.values())
        return text.encode() + generate_latest(self._process)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        for target in self.targets:
            target.close()


def _describe(error: BaseException, target: Target) -> str:
    """A one-line error message with any credential of the target masked."""
    text = (f"{type(error).__name__}: {error}".splitlines() or ["unknown error"])[0]
    return scrub(text, [s for s in (target.password, url_password(target.url)) if s])
