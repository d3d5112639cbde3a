"""Peak memory of `watchkeeper generate` as a user runs it: the CLI, from a spec file to
files on disk, for N synthetic services (bench/generate.py's service with every signal).

Each size runs in a fresh process under GNU time (`/usr/bin/time -v`); "Maximum resident
set size" is that of the largest single process (the CLI or one of its forked workers),
not their sum. `--generator DIR` runs another checkout's generator (its `generator/`
folder) for a side-by-side comparison; `--legacy-spec` leaves out `alertmanager:` for a
checkout from before receivers were required.

Usage: python bench/generate_memory.py [--sizes 1000 5000] [--generator ../main/generator]
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generate import spec  # bench/generate.py, on the path just above

REPO = Path(__file__).resolve().parents[1]


def run(size: int, generator: Path, legacy: bool, workdir: Path) -> dict:
    document = spec(size)
    if legacy:
        document["defaults"].pop("alertmanager", None)
    spec_path = workdir / f"bench-{size}.json"
    spec_path.write_text(json.dumps(document))  # JSON is YAML: the CLI reads it as is
    out = workdir / f"out-{size}"
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "PYTHONPATH": str(generator)}
    result = subprocess.run(["/usr/bin/time", "-v", sys.executable, "-m", "watchkeeper.cli",
                             "generate", str(spec_path), "--out", str(out)],
                            capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        raise SystemExit(f"generate failed for {size} services:\n{result.stderr[-2000:]}")
    peak = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", result.stderr)[1])
    wall = re.search(r"Elapsed \(wall clock\) time .*: ([\d:.]+)", result.stderr)[1]
    size_mb = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 1e6
    shutil.rmtree(out, ignore_errors=True)
    return {"services": size, "peak_rss_mib": peak / 1024, "wall": wall, "output_mb": size_mb}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--generator", type=Path, default=REPO / "generator")
    parser.add_argument("--legacy-spec", action="store_true")
    args = parser.parse_args()
    print(f"generator: {args.generator}")
    print(f"{'services':>9} {'peak RSS MiB':>13} {'wall':>9} {'output MB':>10}")
    with tempfile.TemporaryDirectory(prefix="wk-bench-mem-") as workdir:
        for size in args.sizes:
            row = run(size, args.generator.resolve(), args.legacy_spec, Path(workdir))
            print(f"{row['services']:>9} {row['peak_rss_mib']:>13.0f} {row['wall']:>9} "
                  f"{row['output_mb']:>10.0f}")


if __name__ == "__main__":
    main()
