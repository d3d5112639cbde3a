"""Generation benchmark: rules + promtool tests (and any other registered output) for N
synthetic services with every signal. Prints services/s and peak memory per size.

Each size runs in a fresh process (so peak RSS is that size's own), `--repeat` times;
the median wall time is reported. Usage: python bench/generate.py [--sizes 10 100 1000]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

SERVICE = {
    "selector": {}, "language": "go",
    "http": {"latency": {"p50": {"warning": "50ms", "critical": "200ms"},
                         "p99": {"warning": "200ms", "critical": "1s"}},
             "error_ratio": {"warning": "0.1%", "critical": "1%"}},
    "database": {"latency": {"p99": {"warning": "10ms", "critical": "100ms"}},
                 "pool": {"utilization": {"warning": "80%", "critical": "95%"}}},
    "caches": [{"name": "wallets", "hit_ratio": {"warning": "80%", "critical": "50%"}}],
    "runtime": {"memory": {"warning": "512MiB", "critical": "2GiB"},
                "goroutines": {"warning": 5000, "critical": 10000,
                               "leak": {"window": "1h", "horizon": "4h"}},
                "threads": {"warning": 200, "critical": 1000,
                            "leak": {"window": "1h", "horizon": "4h"}},
                "gc_pause": {"warning": "50ms", "critical": "200ms"}},
}


def spec(count: int) -> dict:
    services = []
    for index in range(count):
        name = f"svc-{index}"
        services.append({**SERVICE, "name": name, "selector": {"job": name}})
    return {"version": 1, "defaults": {"labels": {"team": "bench"}}, "services": services}


def measure(count: int, serial: bool, only: list[str] | None) -> dict:
    """Validate, resolve and render every output for `count` services (in memory)."""
    from watchkeeper import generate as generation
    from watchkeeper.spec import SpecFile, resolve

    if serial:
        generation.PARALLEL_MIN_SERVICES = sys.maxsize

    document = spec(count)
    start = time.perf_counter()
    services = resolve(SpecFile.model_validate(document))
    files = generation.generate(services, "bench.yaml", only)
    elapsed = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"services": count, "seconds": elapsed, "files": len(files),
            "bytes": sum(len(text) for text in files.values()), "peak_rss_mib": peak_kib / 1024}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000, 10000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serial", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--only", action="append", choices=["alerts", "dashboards"],
                        help="measure only these outputs (default: all)")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.child, args.serial, args.only)))
        return
    print("serial = one process; default = generate() as the CLI runs it (a process per core "
          "from 64 services on). Runs interleaved, medians of --repeat.")
    print(f"{'services':>9} {'mode':>8} {'median s':>9} {'services/s':>11} {'peak RSS MiB':>13} "
          f"{'output MB':>10}")
    for size in args.sizes:
        runs: dict[str, list[dict]] = {"serial": [], "default": []}
        for _ in range(args.repeat):
            for mode, flag in (("serial", ["--serial"]), ("default", [])):
                only = [f"--only={o}" for o in args.only or ()]
                child = subprocess.run([sys.executable, __file__, "--child", str(size), *flag,
                                        *only],
                                       capture_output=True, text=True, check=True)
                runs[mode].append(json.loads(child.stdout))
        for mode, results in runs.items():
            seconds = statistics.median(run["seconds"] for run in results)
            peak = max(run["peak_rss_mib"] for run in results)
            print(f"{size:>9} {mode:>8} {seconds:>9.3f} {size / seconds:>11.0f} {peak:>13.0f} "
                  f"{results[0]['bytes'] / 1e6:>10.1f}")


if __name__ == "__main__":
    main()
