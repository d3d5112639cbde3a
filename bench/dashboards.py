"""Benchmark: dashboards at scale, as a user runs them.

`watchkeeper generate SPEC --out DIR` (cold: into an empty folder) with every output and
with `--only dashboards`, for the spec of `bench/generate.py` (services declaring every
signal), each in a fresh process. Several checkouts' `generator/` folders can be timed side
by side, interleaved (the machine is shared and noisy: compare them within one run). Per
generator: median wall seconds, median CPU seconds (user + system of the process and its
pool workers, which load does not inflate the way it does wall time) and the bytes written
to `dashboards/`, its overview and one service dashboard.

    git archive main generator | tar -x -C /tmp/before
    flock /tmp/wk-heavy.lock .venv/bin/python -u bench/dashboards.py --sizes 1000 \\
        --generator /tmp/before/generator --generator generator

Not a test: numbers vary by machine and load; they are recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate import write_spec  # bench/generate.py: the same spec


def run(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process and every child it waited for)."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               env={**os.environ, **env})
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"{' '.join(argv)} failed:\n{output.decode(errors='replace')[-3000:]}")
    return time.perf_counter() - start, usage.ru_utime + usage.ru_stime


def size(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def bench(work: Path, count: int, repeat: int, generators: list[Path]) -> None:
    spec = work / f"spec-{count}.yaml"
    write_spec(spec, count)
    modes = {"all outputs": [], "--only dashboards": ["--only", "dashboards"]}
    times: dict = {(g, m): {"wall": [], "cpu": []} for g in generators for m in modes}
    sizes: dict = {}
    for index in range(repeat + 1):  # the first round warms the page cache, untimed
        for mode, extra in modes.items():
            for generator in generators:
                out = work / "out"
                shutil.rmtree(out, ignore_errors=True)
                wall, cpu = run([sys.executable, "-m", "watchkeeper.cli", "generate",
                                 str(spec), "--out", str(out), *extra],
                                {"PYTHONPATH": str(generator)})
                if index:
                    times[generator, mode]["wall"].append(wall)
                    times[generator, mode]["cpu"].append(cpu)
                folder = out / "dashboards"
                sizes[generator] = (size(folder), (folder / "overview.json").stat().st_size,
                                    (folder / "svc-1.json").stat().st_size)
    print(f"\n## {count} services, cold generate, medians of {repeat}")
    print(f"{'generator':>24} {'outputs':>18} {'wall s':>7} {'CPU s':>7} {'dashboards/ MB':>15} "
          f"{'overview KB':>12} {'svc-1 KB':>9}")
    for generator in generators:
        label = str(generator.parent.name)
        total, overview, one = sizes[generator]
        for mode in modes:
            row = times[generator, mode]
            print(f"{label:>24} {mode:>18} {statistics.median(row['wall']):>7.2f} "
                  f"{statistics.median(row['cpu']):>7.2f} {total / 1e6:>15.1f} "
                  f"{overview / 1e3:>12.1f} {one / 1e3:>9.1f}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--generator", type=Path, action="append",
                        help="a checkout's generator/ folder (repeatable; default: this one)")
    args = parser.parse_args()
    generators = [g.resolve() for g in args.generator or
                  [Path(__file__).resolve().parents[1] / "generator"]]
    print(f"{os.cpu_count()} cores; load {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory(prefix="wk-bench-dashboards-") as tmp:
        for count in args.sizes:
            bench(Path(tmp), count, args.repeat, generators)
    print(f"load {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
