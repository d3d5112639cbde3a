"""How often Ctrl-C leaves something behind: `watchkeeper generate` of a 1,000-service spec
into a folder holding a previous run's output, SIGINT sent to it (the parent alone, as
`kill -INT`; --group: to its process group, as a terminal's Ctrl-C; --signal TERM) at a
random moment in a window, then a count of the runs that left a staging folder, shelf or
spill file, left output that is neither the previous one nor that of a run not
interrupted, or did not end as interrupted (130; 143; or 0 once it had committed).

The window opens when a worker has staged its first alert file, and lasts --window
seconds: the first pool's later tasks are still being submitted then (each reads the spec
on first), which is where session 24's landing CI lost a staging folder. Checkouts given
with --generator run in turn, run by run, so both see the same machine.

Usage: python bench/interrupt.py --runs 30 --window 0.3 \\
           --generator /tmp/before/generator --generator generator
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from generate import spec as bench_spec  # bench/generate.py: the spec the benchmarks time

OURS = (".watchkeeper-stage.", ".watchkeeper-spill.", ".watchkeeper-shelf.")
DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}  # as `watchkeeper` ends on each


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not any(part.startswith(OURS) for part in p.parts)}


def command(spec: Path, out: Path) -> list[str]:
    """`watchkeeper generate`; which checkout runs it is up to PYTHONPATH (`_env`)."""
    return [sys.executable, "-m", "watchkeeper.cli", "generate", str(spec), "--out", str(out)]


def _env(generator: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(generator.resolve())}


def completed(generator: Path, big: Path, small: Path, folder: Path) -> dict[str, bytes]:
    """The output of a run of `big` that was not interrupted, over `small`'s."""
    out = folder / "out"
    for spec in (small, big):
        subprocess.run(command(spec, out), env=_env(generator), check=True,
                       capture_output=True)
    return tree(out)


def one_run(generator: Path, big: Path, small: Path, folder: Path, window: float,
            complete: dict[str, bytes], kind: signal.Signals = signal.SIGINT,
            group: bool = False) -> tuple[str, str]:
    """(where the signal landed: "before" the commit, or "after" it began; what went
    wrong, '' when nothing did). A signal that arrives during the commit waits for it
    (old output or new, never half), then ends the run as interrupted."""
    env = _env(generator)
    out = folder / "out"
    subprocess.run(command(small, out), env=env, check=True, capture_output=True)
    before = tree(out)
    proc = subprocess.Popen(command(big, out), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    while not list(out.glob("alerts/.watchkeeper-stage.*/*.yml")):
        if proc.poll() is not None:
            return "after", f"ended ({proc.returncode}) before the window"
        time.sleep(0.002)
    time.sleep(random.uniform(0, window))
    if group:  # as a terminal's Ctrl-C, or a CI runner ending the job's process group
        os.killpg(proc.pid, kind)
    else:
        proc.send_signal(kind)
    _, err = proc.communicate(timeout=300)
    left = [str(p.relative_to(folder)) for p in folder.rglob("*") if p.name.startswith(OURS)]
    problems = [f"left {', '.join(left)}"] if left else []
    after = tree(out)
    landed = "before" if after == before else "after"
    ended_as = {EXIT[kind], 0} if landed == "after" else {EXIT[kind]}  # 0: it had committed
    if proc.returncode not in ended_as:
        problems.append(f"exit {proc.returncode}: {err.strip()[-200:]}")
    if after not in (before, complete):
        differ = sorted(path for path in after.keys() | complete.keys()
                        if after.get(path) != complete.get(path))
        problems.append("the output is neither the previous one nor the new one; unlike "
                        f"the new one: {', '.join(differ[:5])} ({len(differ)} files)")
    return landed, "; ".join(problems)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30, help="runs per checkout")
    parser.add_argument("--window", type=float, default=0.3, help="seconds (see above)")
    parser.add_argument("--services", type=int, default=1000)
    parser.add_argument("--signal", choices=["INT", "TERM"], default="INT")
    parser.add_argument("--group", action="store_true",
                        help="signal the whole process group (workers too)")
    parser.add_argument("--generator", type=Path, action="append",
                        help="a checkout's generator/ folder (default: this one's)")
    args = parser.parse_args()
    generators = args.generator or [Path(__file__).resolve().parents[1] / "generator"]
    failed = {generator: 0 for generator in generators}
    landed = {generator: {"before": 0, "after": 0} for generator in generators}
    with tempfile.TemporaryDirectory(prefix="wk-interrupt-") as scratch:
        root = Path(scratch)
        big, small = root / "big.yaml", root / "small.yaml"
        big.write_text(yaml.dump(bench_spec(args.services), Dumper=DUMPER, sort_keys=False))
        small.write_text(yaml.dump(bench_spec(3), Dumper=DUMPER, sort_keys=False))
        complete = {generator: completed(generator, big, small, root / f"complete-{index}")
                    for index, generator in enumerate(generators)}
        for run in range(args.runs):
            for index, generator in enumerate(generators):
                folder = root / f"run-{run}-{index}"
                folder.mkdir()
                where, problem = one_run(generator, big, small, folder, args.window,
                                         complete[generator],
                                         signal.Signals[f"SIG{args.signal}"], args.group)
                landed[generator][where] += 1
                if problem:
                    failed[generator] += 1
                    print(f"run {run} {generator}: {problem}", flush=True)
                shutil.rmtree(folder)
    for generator, count in failed.items():
        print(f"{generator}: {count} of {args.runs} interrupted runs went wrong "
              f"(signal before the commit: {landed[generator]['before']}, "
              f"during or after it: {landed[generator]['after']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
