"""Sidecar scrape latency and resident memory, side by side with the Go exporters.

Starts N redis-servers and N PostgreSQL clusters (tests/servers.py), then:
  * watchkeeper-exporter with N Redis + N PostgreSQL targets (one scrape = one GET);
  * Debian's prometheus-redis-exporter and prometheus-postgres-exporter, one process per server
    (their usual deployment; postgres_exporter 0.11's multi-DSN mode answers 500 with duplicate
    collector series); one scrape round = all their /metrics fetched concurrently, timed until
    the last one answers.
Scrapes alternate between the two so both see the same machine state; reports p50/p99 and
the sum of VmRSS after the run. Needs: apt-get install prometheus-redis-exporter
prometheus-postgres-exporter. Usage: python bench/exporters_sidecar.py --targets 1 10
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import servers


def rss_mb(pids: list[int]) -> float:
    total_kb = 0
    for pid in pids:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total_kb += int(line.split()[1])
    return total_kb / 1024


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@contextlib.contextmanager
def go_exporters(redis_urls: list[str], pg_dsns: list[str]) -> Iterator[tuple[list[str], list]]:
    procs, urls = [], []
    try:
        for url in redis_urls:
            port = servers.free_port()
            procs.append(subprocess.Popen(
                ["prometheus-redis-exporter", "-redis.addr", url,
                 "-web.listen-address", f"127.0.0.1:{port}"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            urls.append(f"http://127.0.0.1:{port}/metrics")
        for dsn in pg_dsns:
            port = servers.free_port()
            env = {**os.environ, "DATA_SOURCE_NAME": dsn}
            procs.append(subprocess.Popen(
                ["prometheus-postgres-exporter", f"--web.listen-address=127.0.0.1:{port}"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env))
            urls.append(f"http://127.0.0.1:{port}/metrics")
        for url, proc in zip(urls, procs, strict=True):
            servers.wait_for_port(int(url.split(":")[2].split("/")[0]), proc=proc)
        yield urls, procs
    finally:
        for proc in procs:
            servers._stop(proc)


def run(n: int, scrapes: int, timeout: str) -> dict[str, float]:
    redises = [servers.RedisServer() for _ in range(n)]
    for r in redises:
        r.start()
    try:
        with contextlib.ExitStack() as stack:
            clusters = [stack.enter_context(servers.postgres_server()) for _ in range(n)]
            dsns = [pg.dsn() + "?sslmode=disable" for pg in clusters]
            args = [a for i, r in enumerate(redises) for a in ("--redis", f"r{i}={r.url}")]
            args += [a for i, d in enumerate(dsns) for a in ("--postgres", f"p{i}={d}")]
            with servers.sidecar(*args, "--timeout", timeout) as side, \
                    go_exporters([r.url for r in redises], dsns) as (go_urls, go_procs), \
                    ThreadPoolExecutor(len(go_urls)) as pool:
                def go_round() -> None:
                    results = list(pool.map(lambda u: servers.get(u, 10), go_urls))
                    bad = [(u, s, b[:300]) for u, (s, b) in zip(go_urls, results, strict=True)
                           if s != 200]
                    assert not bad, bad

                def side_scrape() -> None:
                    status, body = servers.get(side.metrics_url, 10)
                    assert status == 200 and "pg_up{target=\"p0\"} 1.0" in body

                for _ in range(5):
                    side_scrape()
                    go_round()
                side_ms, go_ms = [], []
                for _ in range(scrapes):
                    for fn, out in ((side_scrape, side_ms), (go_round, go_ms)):
                        start = time.perf_counter()
                        fn()
                        out.append((time.perf_counter() - start) * 1000)
                return {
                    "side_p50": statistics.median(side_ms), "side_p99": percentile(side_ms, .99),
                    "side_rss": rss_mb([side.proc.pid]),
                    "go_p50": statistics.median(go_ms), "go_p99": percentile(go_ms, .99),
                    "go_rss": rss_mb([p.pid for p in go_procs]), "go_procs": len(go_procs),
                }
    finally:
        for r in redises:
            r.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, nargs="+", default=[1, 10],
                        help="Redis and PostgreSQL targets of each kind per run")
    parser.add_argument("--scrapes", type=int, default=200)
    parser.add_argument("--timeout", default="5s")
    opts = parser.parse_args()
    for tool in ("prometheus-redis-exporter", "prometheus-postgres-exporter"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} missing: apt-get install -y {tool}")
    print("| targets (Redis + PG) | exporter | scrape p50 ms | scrape p99 ms | RSS MB |")
    print("|---|---|---:|---:|---:|")
    for n in opts.targets:
        r = run(n, opts.scrapes, opts.timeout)
        print(f"| {n} + {n} | watchkeeper-exporter (1 process) | {r['side_p50']:.1f} | "
              f"{r['side_p99']:.1f} | {r['side_rss']:.1f} |")
        print(f"| {n} + {n} | Go redis_exporter + postgres_exporter ({r['go_procs']} processes) "
              f"| {r['go_p50']:.1f} | {r['go_p99']:.1f} | {r['go_rss']:.1f} |")


if __name__ == "__main__":
    main()
