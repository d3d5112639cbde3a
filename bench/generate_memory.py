"""Peak memory of `watchkeeper generate` as a user runs it: the CLI, from a spec file to
files on disk, for N synthetic services (bench/generate.py's service with every signal).

Each size runs in a fresh process under GNU time (`/usr/bin/time -v`); "Maximum resident
set size" is that of the largest single process (the CLI or one of its forked workers),
not their sum. The CLI runs under a small wrapper that also reports, at exit, its own peak
(`getrusage(RUSAGE_SELF)`: the parent, which reads the spec) and that of the largest child
it waited for (`RUSAGE_CHILDREN`: the pool's workers), so each can be told apart.
`--generator DIR` runs another checkout's generator (its `generator/` folder) for a
side-by-side comparison; `--legacy-spec` leaves out `alertmanager:` for a checkout from
before receivers were required.

`--warm` also times a second run over the same output (nothing changed: every service's
files reused from the build record).

Usage: python bench/generate_memory.py [--sizes 1000 5000] [--format json --format yaml]
       [--generator /tmp/before/generator --generator generator] [--warm]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate import spec  # bench/generate.py, on the path just above

REPO = Path(__file__).resolve().parents[1]


class _NoAliases(yaml.SafeDumper):
    def ignore_aliases(self, data: object) -> bool:
        return True


def run(size: int, generator: Path, legacy: bool, workdir: Path, form: str = "json",
        warm: bool = False) -> dict:
    document = spec(size)
    if legacy:
        document["defaults"].pop("alertmanager", None)
    spec_path = workdir / f"bench-{size}.{form}"
    if form == "json":
        spec_path.write_text(json.dumps(document))  # JSON is YAML: the CLI reads it as is
    else:  # block YAML as people write it: every service spelt out, no anchors
        spec_path.write_text(yaml.dump(document, Dumper=_NoAliases, sort_keys=False))
    out = workdir / f"out-{size}"
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(generator)}
    peak, wall, parent, workers = _generate(spec_path, out, env, size)
    row = {"services": size, "peak_rss_mib": peak / 1024, "wall": wall,
           "parent_mib": parent / 1024, "workers_mib": workers / 1024,
           "output_mb": sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 1e6}
    if warm:  # again over the same output, nothing changed: every service's files reused
        peak, row["warm_wall"], _, _ = _generate(spec_path, out, env, size)
        row["warm_peak_rss_mib"] = peak / 1024
    shutil.rmtree(out, ignore_errors=True)
    return row


# Runs the CLI as `python -m watchkeeper.cli` does, and at exit (after the pool's workers
# were joined) writes the peaks of this process and of its largest waited-for child.
_WRAPPER = """
import atexit, os, resource, runpy, sys
def _peaks():
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    os.write(2, f"\\nwk-peaks-kib {own} {kids}\\n".encode())
atexit.register(_peaks)
sys.argv[0] = "watchkeeper"
runpy.run_module("watchkeeper.cli", run_name="__main__", alter_sys=True)
"""


def _generate(spec_path: Path, out: Path, env: dict[str, str],
              size: int) -> tuple[int, str, int, int]:
    """(peak RSS KiB of the largest process, wall time, the parent's own peak KiB, the
    largest worker's peak KiB) of one `watchkeeper generate`."""
    result = subprocess.run(["/usr/bin/time", "-v", sys.executable, "-c", _WRAPPER,
                             "generate", str(spec_path), "--out", str(out)],
                            capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        raise SystemExit(f"generate failed for {size} services:\n{result.stderr[-2000:]}")
    peak = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr)[1])
    wall = re.search(r"Elapsed \(wall clock\) time .*: ([\d:.]+)", result.stderr)[1]
    own, kids = map(int, re.search(r"wk-peaks-kib (\d+) (\d+)", result.stderr).groups())
    return peak, wall, own, kids


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--generator", type=Path, action="append",
                        help="a checkout's generator/ folder (repeatable: side by side; "
                        "default this checkout's)")
    parser.add_argument("--legacy-spec", action="store_true")
    parser.add_argument("--format", choices=("json", "yaml"), action="append",
                        help="spec file format (repeatable; default json)")
    parser.add_argument("--warm", action="store_true",
                        help="also a second run over the same output (unchanged spec: "
                        "every service reused from the build record)")
    args = parser.parse_args()
    generators = [g.resolve() for g in args.generator or [REPO / "generator"]]
    print(f"{'generator':>28} {'format':>6} {'services':>9} {'peak RSS MiB':>13} {'parent':>7} "
          f"{'workers':>8} {'wall':>9} {'output MB':>10}"
          + (f" {'warm: peak RSS MiB':>19} {'wall':>9}" if args.warm else ""))
    with tempfile.TemporaryDirectory(prefix="wk-bench-mem-") as workdir:
        for size in args.sizes:
            for form in args.format or ["json"]:
                for generator in generators:  # side by side, one after the other per size
                    row = run(size, generator, args.legacy_spec, Path(workdir), form,
                              args.warm)
                    warm = (f" {row['warm_peak_rss_mib']:>19.0f} {row['warm_wall']:>9}"
                            if args.warm else "")
                    print(f"{str(generator)[-28:]:>28} {form:>6} {row['services']:>9} "
                          f"{row['peak_rss_mib']:>13.1f} {row['parent_mib']:>7.1f} "
                          f"{row['workers_mib']:>8.1f} {row['wall']:>9} "
                          f"{row['output_mb']:>10.0f}{warm}", flush=True)


if __name__ == "__main__":
    main()
