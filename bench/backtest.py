"""Backtest benchmark: `watchkeeper backtest` of a spec over a backfilled week, as a user runs it.

Synthesises a week of one-minute samples for every raw series the spec's alerts read (named by
the backtest's own plan, so new signals get data too), with a few incidents per service,
backfills it with `promtool tsdb create-blocks-from openmetrics`, starts Prometheus on it and
times the CLI (a fresh process each run) with and without `--out`. Setup is not timed.

    python bench/backtest.py [--spec spec/services.yaml] [--days 7] [--repeat 3]
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import servers  # noqa: E402
from watchkeeper.backtest import engine, source  # noqa: E402

LE = ("0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf")
DAY = 1440


def incident(service: int, kind: str, minute: int) -> bool:
    """A few faults a week, at different times per service (minutes from the start)."""
    day, at = divmod(minute, DAY)
    shift = service * 97
    windows = {
        "latency": [(1, 600 + shift, 640 + shift), (4, 300, 315)],
        "errors": [(2, 900 + shift, 960 + shift)] + [(5, 100 + 20 * i, 106 + 20 * i)
                                                      for i in range(5)],
        "db": [(3, 200 + shift, 290 + shift)],
        "cache": [(4, 1000, 1120)],
        "memory": [(6, 60 + shift, 240 + shift)],
        "pool": [(1, 1200, 1230)],
    }
    return any(day == d and start <= at < end for d, start, end in windows[kind])


def traffic(minute: int) -> float:
    """Requests per minute: a daily cycle between 600 and 1800."""
    return 1200 + 600 * math.sin(2 * math.pi * minute / DAY)


def histogram(mean: float, count: float) -> list[float]:
    """Per-bucket cumulative counts of ``count`` exponential latencies with ``mean``."""
    return [count if le == "+Inf" else count * (1 - math.exp(-float(le) / mean)) for le in LE]


class Week:
    """Counters and gauges for one service, one sample a minute."""

    def __init__(self, index: int, minutes: int):
        self.index, self.minutes = index, minutes

    def latency(self, kind: str, minute: int) -> float:
        if kind == "db":
            return 0.03 if incident(self.index, "db", minute) else 0.003
        return 0.4 if incident(self.index, "latency", minute) else 0.02

    def errors(self, minute: int) -> float:
        return 0.03 if incident(self.index, "errors", minute) else 0.0002

    def series(self, name: str, labels: dict) -> list[tuple[dict, list[float]]]:
        """Every series named ``name`` (with ``labels``) this service exposes."""
        kind = "db" if name.startswith("db_") else "http"
        base = name.rsplit("_", 1)[0]
        if name.endswith(("_bucket", "_count", "_sum")) and base != "go_gc_duration_seconds":
            return self._histogram(name, labels, kind)
        if name.endswith("_total"):
            hit = name.startswith("cache_hits")
            ratio = [0.6 if incident(self.index, "cache", m) else 0.93 for m in
                     range(self.minutes)]
            return [({**labels, "cache": cache}, _cumulate(
                traffic(m) * (r if hit else 1 - r) for m, r in enumerate(ratio)))
                    for cache in ("wallets", "festivals", "redis", "l1", "l2")]
        if base == "go_gc_duration_seconds":
            count = [2.0] * self.minutes
            return [(labels, _cumulate(count if name.endswith("count") else
                                       [c * 0.002 for c in count]))]
        return [(labels, [self.gauge(name, m) for m in range(self.minutes)])]

    def _histogram(self, name: str, labels: dict, kind: str) -> list[tuple[dict, list[float]]]:
        codes = ("200", "500") if kind == "http" else ("",)
        result = []
        for code in codes:
            extra = {**labels, "code": code} if code else dict(labels)
            counts = []
            for m in range(self.minutes):
                share = self.errors(m) if code == "500" else 1 - self.errors(m)
                counts.append(traffic(m) * share if code else traffic(m) / 2)
            if name.endswith("_bucket"):
                columns = [histogram(self.latency(kind, m), c) for m, c in enumerate(counts)]
                for position, le in enumerate(LE):
                    result.append(({**extra, "le": le},
                                   _cumulate(column[position] for column in columns)))
            elif name.endswith("_count"):
                result.append((extra, _cumulate(counts)))
            else:
                result.append((extra, _cumulate(c * self.latency(kind, m)
                                                for m, c in enumerate(counts))))
        return result

    def gauge(self, name: str, minute: int) -> float:
        if name == "up":
            return 1.0
        if name == "process_resident_memory_bytes":
            return (700 if incident(self.index, "memory", minute) else 300) * 2 ** 20
        if name in ("go_sql_in_use_connections", "db_client_connection_count"):
            return 24.0 if incident(self.index, "pool", minute) else 8.0
        if name in ("go_sql_max_open_connections", "db_client_connection_max"):
            return 25.0
        return {"go_goroutines": 900.0, "go_threads": 40.0, "python_threads": 20.0,
                "python_asyncio_tasks": 300.0}.get(name, 1.0)


def _cumulate(increments) -> list[float]:
    total, values = 0.0, []
    for increment in increments:
        total += increment
        values.append(round(total, 3))
    return values


def write_history(spec: str, start: int, days: int, path: Path) -> int:
    """OpenMetrics for every series the spec's alerts read; returns the number of series."""
    window = engine.Window.of(start, start + days * 86400, 60)
    plan = engine.plan(source.rule_set(spec), window)
    order = {service: index for index, service in enumerate(
        dict.fromkeys(rule.service for rule, _ in plan.alerts))}
    wanted: dict[tuple, dict] = {}
    for selector in plan.raw.values():
        labels = {m.label: m.value for m in selector.equality_matchers()}
        wanted[(selector.name, tuple(sorted(labels.items())))] = labels
    count = 0
    with path.open("w") as out:
        for (name, _), labels in sorted(wanted.items()):
            week = Week(order.get(labels.get("job", ""), 0), days * DAY)
            for series_labels, values in week.series(name, {**labels, "instance": "host-1"}):
                text = name + "{" + ",".join(f'{k}="{v}"' for k, v in
                                             sorted(series_labels.items())) + "}"
                out.writelines(f"{text} {value} {start + 60 * minute}\n"
                               for minute, value in enumerate(values))
                count += 1
        out.write("# EOF\n")
    return count


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default=str(REPO / "spec" / "services.yaml"))
    parser.add_argument("--days", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--baseline", metavar="DIR",
                        help="also time the generator package in DIR (e.g. an older commit "
                        "unpacked with git archive), side by side")
    parser.add_argument("--keep-report", metavar="DIR",
                        help="copy the last --out report (index.html, PNGs) into DIR")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="wk-bench-backtest-"))
    start = int(time.time()) // 3600 * 3600 - (args.days * 24 + 2) * 3600
    try:
        began = time.monotonic()
        series = write_history(args.spec, start, args.days, root / "week.om")
        subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics",
                        str(root / "week.om"), str(root / "data")], check=True,
                       capture_output=True)
        print(f"history: {series} series x {args.days * DAY} minutes, backfilled in "
              f"{time.monotonic() - began:.0f}s", flush=True)
        (root / "prometheus.yml").write_text("global: {}\n")
        port = servers.free_port()
        prometheus = servers.Daemon([
            "prometheus", f"--config.file={root / 'prometheus.yml'}",
            f"--storage.tsdb.path={root / 'data'}", "--storage.tsdb.retention.time=10y",
            f"--web.listen-address={servers.HOST}:{port}", "--log.level=warn"], port).start()
        try:
            command = [str(Path(sys.executable).parent / "watchkeeper"), "backtest", args.spec,
                       "--prometheus", prometheus.url, "--from", str(start),
                       "--to", str(start + args.days * 86400)]
            variants = [("baseline text", [], {"PYTHONPATH": args.baseline})] \
                if args.baseline else []
            variants += [("text table", [], None),
                         ("--out report", ["--out", str(root / "report")], None)]
            timings: dict[str, list[float]] = {label: [] for label, _, _ in variants}
            for _ in range(args.repeat):  # side by side, alternating
                for label, extra, env in variants:
                    argv = command + extra
                    if env:  # the same CLI from another copy of the package
                        argv = [sys.executable, "-c", "import sys; from watchkeeper.cli import "
                                "main; sys.exit(main())", *command[1:]]
                    began = time.monotonic()
                    done = subprocess.run(argv, capture_output=True, text=True,
                                          env={**os.environ, **(env or {})})
                    timings[label].append(time.monotonic() - began)
                    if done.returncode:
                        print(done.stderr, file=sys.stderr)
                        return 1
            print(done.stdout.splitlines()[-1])  # the last variant's summary line
            if args.keep_report:
                shutil.copytree(root / "report", args.keep_report, dirs_exist_ok=True)
            print(f"$ watchkeeper backtest {args.spec} --prometheus URL --from T "
                  f"--to T+{args.days}d [--out DIR]")
            for label, values in timings.items():
                print(f"{label:13} median {statistics.median(values):.2f}s over "
                      f"{len(values)} runs ({', '.join(f'{v:.2f}' for v in values)})")
        finally:
            prometheus.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
