"""Steady, bounded load for the demo service: loopback only, stops by itself.

    python examples/demo/loadgen.py http://127.0.0.1:8000 --rps 20 --duration 300

80% of requests read an item (``/items/1..30``, cached), 20% run an uncached ``/search``,
from a few worker threads with keep-alive connections. The run ends after ``--duration``
seconds or ``--max-requests`` requests, whichever comes first, or when ``stop`` is set.
Only loopback targets are accepted: this is a test tool, never a load test of someone else.

It sends at its pace whatever the service answers, so a throughput drop is injected in front of
the service (the app's ``traffic_drop`` switch turns requests away before its instrumentation),
not here. It does wait for each answer, so a slow service gets fewer requests: with latency
+800 ms six workers send ~7 a second (the demo's throughput floor is below that).
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import ipaddress
import random
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit

HOT_ITEMS = 30


@dataclass
class Stats:
    """Counts by outcome, shared by the workers."""

    sent: int = 0
    by_status: dict[int, int] = field(default_factory=dict)
    failures: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, status: int | None) -> None:
        with self.lock:
            self.sent += 1
            if status is None:
                self.failures += 1
            else:
                self.by_status[status] = self.by_status.get(status, 0) + 1


def require_loopback(url: str) -> tuple[str, int]:
    """(host, port) of ``url``; refuses anything that does not resolve to loopback."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"expected http://HOST:PORT, got {url!r}")
    port = parts.port or 80
    for info in socket.getaddrinfo(parts.hostname, port, proto=socket.IPPROTO_TCP):
        if not ipaddress.ip_address(info[4][0]).is_loopback:
            raise ValueError(f"{parts.hostname} is not a loopback address; refusing to send load")
    return parts.hostname, port


def _path(rng: random.Random) -> str:
    if rng.random() < 0.8:
        return f"/items/{rng.randint(1, HOT_ITEMS)}"
    return f"/search?q={rng.randint(1, 9)}"


def _worker(host: str, port: int, interval: float, deadline: float, budget: threading.Semaphore,
            stop: threading.Event, stats: Stats, seed: int) -> None:
    """One keep-alive connection sending a request every ``interval`` seconds."""
    rng = random.Random(seed)
    conn = http.client.HTTPConnection(host, port, timeout=10)
    next_at = time.monotonic() + rng.random() * interval
    while not stop.is_set() and time.monotonic() < deadline and budget.acquire(blocking=False):
        stop.wait(max(0.0, next_at - time.monotonic()))
        next_at += interval
        try:
            conn.request("GET", _path(rng))
            response = conn.getresponse()
            response.read()
            stats.record(response.status)
        except (OSError, http.client.HTTPException):
            stats.record(None)
            conn.close()
            stop.wait(0.2)  # service down: do not spin
            conn = http.client.HTTPConnection(host, port, timeout=10)
        next_at = max(next_at, time.monotonic())
    conn.close()


def run(url: str, rps: float = 20.0, duration: float = 600.0, max_requests: int = 200_000,
        workers: int = 6, stop: threading.Event | None = None,
        stats: Stats | None = None) -> Stats:
    """Send load until ``duration``/``max_requests``/``stop``; returns the counts."""
    host, port = require_loopback(url)
    stop = stop or threading.Event()
    stats = stats or Stats()
    budget = threading.Semaphore(max_requests)
    deadline = time.monotonic() + duration
    threads = [threading.Thread(target=_worker, daemon=True, name=f"loadgen-{i}",
                                args=(host, port, workers / rps, deadline, budget, stop, stats, i))
               for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return stats


@contextlib.contextmanager
def background(url: str, **kwargs: float) -> Iterator[Stats]:
    """Runs :func:`run` in a thread for the duration of a ``with`` block."""
    stop, stats = threading.Event(), Stats()
    thread = threading.Thread(target=run, args=(url,), daemon=True, name="loadgen",
                              kwargs={**kwargs, "stop": stop, "stats": stats})
    thread.start()
    try:
        yield stats
    finally:
        stop.set()
        thread.join()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="base URL of the demo service (loopback only)")
    parser.add_argument("--rps", type=float, default=20.0)
    parser.add_argument("--duration", type=float, default=600.0, help="seconds (default 600)")
    parser.add_argument("--max-requests", type=int, default=200_000)
    parser.add_argument("--workers", type=int, default=6)
    args = parser.parse_args(argv)
    stop = threading.Event()
    try:
        stats = run(args.url, args.rps, args.duration, args.max_requests, args.workers, stop)
    except KeyboardInterrupt:
        stop.set()
        return 130
    print(f"sent {stats.sent}: {dict(sorted(stats.by_status.items()))}, "
          f"{stats.failures} connection failures")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
