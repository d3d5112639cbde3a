"""Peak memory of `watchkeeper generate` as a user runs it: the CLI, from a spec file to
files on disk, for N synthetic services (bench/generate.py's service with every signal).

Each size runs in a fresh process under GNU time (`/usr/bin/time -v`); "Maximum resident
set size" is that of the largest single process (the CLI or one of its forked workers),
not their sum. `--generator DIR` runs another checkout's generator (its `generator/`
folder) for a side-by-side comparison; `--legacy-spec` leaves out `alertmanager:` for a
checkout from before receivers were required.

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
    peak, wall = _generate(spec_path, out, env, size)
    row = {"services": size, "peak_rss_mib": peak / 1024, "wall": wall,
           "output_mb": sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 1e6}
    if warm:  # again over the same output, nothing changed: every service's files reused
        peak, row["warm_wall"] = _generate(spec_path, out, env, size)
        row["warm_peak_rss_mib"] = peak / 1024
    shutil.rmtree(out, ignore_errors=True)
    return row


def _generate(spec_path: Path, out: Path, env: dict[str, str], size: int) -> tuple[int, str]:
    """(peak RSS KiB of the largest process, wall time) of one `watchkeeper generate`."""
    result = subprocess.run(["/usr/bin/time", "-v", sys.executable, "-m", "watchkeeper.cli",
                             "generate", str(spec_path), "--out", str(out)],
                            capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        raise SystemExit(f"generate failed for {size} services:\n{result.stderr[-2000:]}")
    peak = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr)[1])
    wall = re.search(r"Elapsed \(wall clock\) time .*: ([\d:.]+)", result.stderr)[1]
    return peak, wall


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
    print(f"{'generator':>28} {'format':>6} {'services':>9} {'peak RSS MiB':>13} {'wall':>9} "
          f"{'output MB':>10}" + (f" {'warm: peak RSS MiB':>19} {'wall':>9}" if args.warm else ""))
    with tempfile.TemporaryDirectory(prefix="wk-bench-mem-") as workdir:
        for size in args.sizes:
            for form in args.format or ["json"]:
                for generator in generators:  # side by side, one after the other per size
                    row = run(size, generator, args.legacy_spec, Path(workdir), form,
                              args.warm)
                    warm = (f" {row['warm_peak_rss_mib']:>19.0f} {row['warm_wall']:>9}"
                            if args.warm else "")
                    print(f"{str(generator)[-28:]:>28} {form:>6} {row['services']:>9} "
                          f"{row['peak_rss_mib']:>13.0f} {row['wall']:>9} "
                          f"{row['output_mb']:>10.0f}{warm}", flush=True)


if __name__ == "__main__":
    main()
