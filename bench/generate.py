"""Generation and rule-test benchmark, timing what a user runs: the `watchkeeper` CLI from a
spec file on disk to files on disk, next to `promtool check rules` of the same rule files
in the same run (the machine is shared and noisy, so only ratios taken side by side mean
much). Every command runs in a fresh process; runs are interleaved; medians are reported.

Sections (all by default; pick with --only):
  generate    `watchkeeper generate spec.yaml` for each --sizes, ratio to check rules;
              with --budget-sets N, services take N sets of budgets in turn (services
              sharing presets) instead of each having its own. Beside each cold run, the
              disk's floor: the same files written again as plain bytes by two processes
              (bench/write_floor.py), since file creation here costs 20-250 µs each
  test        `watchkeeper test --all` for --test-services, ratio to check rules; then one
              service's budget changes, the spec is regenerated and `watchkeeper test` (no
              --all) is timed again, ratio to the full run
  test-rules  `make test-rules` on the example spec: cold (TEST_FLAGS=--all) with nothing
              changed, cold after touching the spec, and warm

Usage: python bench/generate.py [--sizes 100 1000] [--test-services 100] [--repeat 3]
       python bench/generate.py --only generate --generator /tmp/before/generator \\
           --generator generator        # two checkouts side by side (any section)
"""

from __future__ import annotations

import argparse
import glob
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
WATCHKEEPER = str(Path(sys.executable).with_name("watchkeeper"))
BENCH = Path(__file__).resolve().parent

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


# Budgets that differ between services, chosen by index (cycles of co-prime lengths, so
# neighbouring services differ in several budgets and 1,000 services make many distinct
# combinations): a spec whose services differ only by name would flatter any memoisation
# of rendered output, which a real organisation's spec does not.
LATENCY = [("50ms", "200ms", "200ms", "1s"), ("80ms", "300ms", "300ms", "1500ms"),
           ("20ms", "100ms", "150ms", "800ms"), ("100ms", "400ms", "500ms", "2s"),
           ("40ms", "250ms", "250ms", "1200ms")]
ERRORS = [("0.1%", "1%"), ("0.5%", "2%"), ("0.05%", "0.5%")]
DATABASE = [("10ms", "100ms", "80%", "95%"), ("15ms", "150ms", "75%", "90%"),
            ("5ms", "50ms", "85%", "98%"), ("20ms", "200ms", "70%", "92%")]
HIT_RATIO = [("80%", "50%"), ("90%", "60%"), ("70%", "40%")]
MEMORY = [("512MiB", "2GiB"), ("256MiB", "1GiB"), ("1GiB", "4GiB"), ("768MiB", "3GiB"),
          ("384MiB", "1536MiB"), ("2GiB", "6GiB"), ("128MiB", "512MiB")]
THREADS = [(5000, 10000, 200, 1000), (3000, 8000, 150, 600), (8000, 20000, 300, 1500)]
GC_PAUSE = [("50ms", "200ms"), ("20ms", "100ms"), ("80ms", "300ms"), ("30ms", "150ms"),
            ("60ms", "250ms"), ("40ms", "120ms"), ("100ms", "500ms"), ("25ms", "90ms"),
            ("70ms", "280ms"), ("45ms", "180ms"), ("35ms", "140ms")]


def unique_service(index: int) -> dict:
    """`SERVICE` named by `index` whose every budget differs from every other service's
    (each value moves with the index): the worst case for any reuse across services, even
    per signal (parts.py), which must then cost about nothing."""
    base = service(index)
    i = index
    return {
        **base,
        "http": {"latency": {"p50": {"warning": f"{50 + i}ms", "critical": f"{2000 + i}ms"},
                             "p99": {"warning": f"{200 + i}ms", "critical": f"{4000 + i}ms"}},
                 "error_ratio": {"warning": f"{0.1 + i / 10000:g}%",
                                 "critical": f"{2 + i / 1000:g}%"}},
        "database": {"latency": {"p99": {"warning": f"{10 + i}ms", "critical": f"{2000 + i}ms"}},
                     "pool": {"utilization": {"warning": f"{60 + i / 100:g}%",
                                              "critical": f"{90 + i / 1000:g}%"}}},
        "caches": [{"name": "wallets", "hit_ratio": {"warning": f"{80 + i / 100:g}%",
                                                     "critical": f"{40 + i / 100:g}%"}}],
        "runtime": {"memory": {"warning": f"{256 + i}MiB", "critical": f"{4096 + i}MiB"},
                    "goroutines": {**base["runtime"]["goroutines"], "warning": 5000 + i,
                                   "critical": 20000 + i},
                    "threads": {**base["runtime"]["threads"], "warning": 200 + i,
                                "critical": 2000 + i},
                    "gc_pause": {"warning": f"{50 + i}ms", "critical": f"{2000 + i}ms"}},
    }


def service(index: int, budgets: int | None = None) -> dict:
    """`SERVICE` named by `index` with budgets chosen by `budgets` (default: `index`;
    deterministic; index 0 has `SERVICE`'s own budgets)."""
    name = f"svc-{index}"
    index = index if budgets is None else budgets
    p50_w, p50_c, p99_w, p99_c = LATENCY[index % len(LATENCY)]
    err_w, err_c = ERRORS[index % len(ERRORS)]
    db_w, db_c, pool_w, pool_c = DATABASE[index % len(DATABASE)]
    hit_w, hit_c = HIT_RATIO[index % len(HIT_RATIO)]
    mem_w, mem_c = MEMORY[index % len(MEMORY)]
    gor_w, gor_c, thr_w, thr_c = THREADS[index % len(THREADS)]
    gc_w, gc_c = GC_PAUSE[index % len(GC_PAUSE)]
    leak = SERVICE["runtime"]["goroutines"]["leak"]
    return {
        **SERVICE, "name": name, "selector": {"job": name},
        "http": {"latency": {"p50": {"warning": p50_w, "critical": p50_c},
                             "p99": {"warning": p99_w, "critical": p99_c}},
                 "error_ratio": {"warning": err_w, "critical": err_c}},
        "database": {"latency": {"p99": {"warning": db_w, "critical": db_c}},
                     "pool": {"utilization": {"warning": pool_w, "critical": pool_c}}},
        "caches": [{"name": "wallets", "hit_ratio": {"warning": hit_w, "critical": hit_c}}],
        "runtime": {"memory": {"warning": mem_w, "critical": mem_c},
                    "goroutines": {"warning": gor_w, "critical": gor_c, "leak": leak},
                    "threads": {"warning": thr_w, "critical": thr_c, "leak": leak},
                    "gc_pause": {"warning": gc_w, "critical": gc_c}},
    }


def spec(count: int, changed: bool = False, budget_sets: int = 0,
         unique: bool = False) -> dict:
    """`count` services declaring every signal, budgets varied by index (`service`): every
    service's set of budgets differs from the others' (up to 4,620 services); with
    `budget_sets`, services take the first `budget_sets` sets in turn instead, as services
    sharing presets do (svc-0, svc-N, svc-2N, ... have equal budgets). `changed` moves one
    budget of svc-0; `unique`: every budget of every service differs (`unique_service`)."""
    services = [unique_service(index) if unique else
                service(index, index % budget_sets if budget_sets else None)
                for index in range(count)]
    if changed:
        runtime = {**services[0]["runtime"], "memory": {"warning": "600MiB",
                                                        "critical": "2GiB"}}
        services[0] = {**services[0], "runtime": runtime}
    return {"version": 1, "defaults": {"labels": {"team": "bench"},
                                       "alertmanager": {"receivers": "none"}},
            "services": services}


def write_spec(path: Path, count: int, changed: bool = False, budget_sets: int = 0,
               unique: bool = False) -> None:
    """Write the bench spec from a child process, so this process stays small.

    Why: Linux carries a forked child's resident-set high-water mark over `exec`, so every
    command this benchmark starts would report at least this process's own peak as its
    "peak RSS". Building a 10,000-service spec here took this process to ~350 MiB, and the
    generate runs then showed 351 MiB when they peaked at 48 MiB.
    """
    arguments = repr((str(path), count, changed, budget_sets, unique))
    subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(BENCH)!r}); "
                    f"import generate; generate.write_spec_here(*{arguments})"], check=True)


def write_spec_here(path: str, count: int, changed: bool, budget_sets: int,
                    unique: bool) -> None:
    """`write_spec`'s work, in the calling process."""
    Path(path).write_text(yaml.safe_dump(spec(count, changed, budget_sets, unique),
                                         sort_keys=False), encoding="utf-8")


def run(argv: list[str], cwd: Path | None = None,
        env: dict[str, str] | None = None) -> tuple[float, float]:
    """Run a command to completion; (wall seconds, peak RSS MiB of the largest process of it
    and its children). `env` adds to the environment."""
    return run_usage(argv, cwd, env)[:2]


def run_usage(argv: list[str], cwd: Path | None = None,
              env: dict[str, str] | None = None) -> tuple[float, float, float, float]:
    """`run`, the CPU seconds (user + system) of the command and the children it waited for
    (a pool's workers): on this shared machine, load inflates them less than wall time; and
    the system part of them (mostly the kernel creating files: on this journal-less ext4 it
    varies several-fold with what was deleted nearby in the last ~30 s)."""
    start = time.perf_counter()
    process = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               env={**os.environ, **env} if env else None)
    chunks = []
    while chunk := process.stdout.read(65536):
        chunks.append(chunk)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - start
    if process.returncode != 0:
        output = b"".join(chunks).decode(errors="replace")
        sys.exit(f"{' '.join(argv)} failed ({process.returncode}):\n{output[-3000:]}")
    return (elapsed, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime,
            usage.ru_stime)


def write_floor(out: Path, destination: Path) -> tuple[float, float]:
    """(wall, CPU seconds) of writing `out`'s files again as plain bytes from two processes
    into `destination` (bench/write_floor.py): the disk's share of a cold run, taken right
    after it. `destination` is deleted with the run's outputs, after the last round."""
    done = subprocess.run([sys.executable, str(BENCH / "write_floor.py"), str(out),
                           str(destination)], capture_output=True, text=True, check=True)
    wall, cpu, _ = (float(field) for field in done.stdout.split())
    return wall, cpu


def check_rules(out: Path) -> list[str]:
    return ["promtool", "check", "rules", *sorted(glob.glob(str(out / "alerts/*.rules.yml")))]


def check_rules_batches(out: Path, batch: int = 4000) -> list[list[str]]:
    """`promtool check rules` over the rule files in batches: 10,000 services' 60,000 file
    names do not fit on one command line (ARG_MAX)."""
    files = sorted(glob.glob(str(out / "alerts/*.rules.yml")))
    return [["promtool", "check", "rules", *files[i:i + batch]]
            for i in range(0, len(files), batch)]


def test_supports_all() -> bool:
    help_text = subprocess.run([WATCHKEEPER, "test", "--help"], capture_output=True,
                               text=True, check=False).stdout
    return "--all" in help_text


def generate_command(generator: Path | None, spec_file: Path, out: Path) -> list[str]:
    """`watchkeeper generate` of this checkout, or of another checkout's `generator/`
    folder (run with it first on PYTHONPATH, see `run`)."""
    if generator is None:
        return [WATCHKEEPER, "generate", str(spec_file), "--out", str(out)]
    return [sys.executable, "-m", "watchkeeper.cli", "generate", str(spec_file), "--out",
            str(out)]


def bench_generate(work: Path, sizes: list[int], repeat: int,
                   generators: list[Path] | None = None, budget_sets: int = 0,
                   unique: bool = False) -> None:
    """Per size and generator (interleaved): `generate` into an empty folder (cold), again
    over its own unchanged output (warm: a re-run after no change), then of the spec with
    one service's budget changed over that output (edit: `make` after editing one service),
    and `promtool check rules` of the rule files, each in a fresh process. `budget_sets`:
    see `spec`."""
    print("\n## watchkeeper generate (all outputs) vs promtool check rules of its rule files"
          + ("; every budget of every service differs" if unique else
             f"; services take {budget_sets} sets of budgets in turn" if budget_sets else
             "; every service's budgets differ"))
    print(f"{'generator':>10} {'services':>9} {'cold s':>7} {'warm s':>7} {'edit s':>7} "
          f"{'check s':>8} {'cold/chk':>9} {'warm/chk':>9} {'edit/chk':>9} "
          f"{'peak RSS MiB':>13} {'cold CPU s':>11} {'of it sys':>10} "
          f"{'floor s':>8} {'floor CPU s':>12}")
    labels = {g: (g.parent.name if g else "this") for g in (generators or [None])}
    for size in sizes:
        folder = work / f"gen-{size}"
        folder.mkdir()
        write_spec(folder / "spec.yaml", size, budget_sets=budget_sets, unique=unique)
        (folder / "edited").mkdir()
        write_spec(folder / "edited" / "spec.yaml", size, changed=True,  # same file name
                   budget_sets=budget_sets, unique=unique)
        rows: dict = {g: {"cold": [], "warm": [], "edit": [], "check": [], "rss": [], "cpu": [],
                          "sys": [], "floor": [], "floor cpu": []}
                      for g in labels}
        for index in range(repeat + 1):  # the first round warms the page cache, untimed
            for generator, row in rows.items():
                # A new folder per round, all deleted after the last round: on a journal-less
                # ext4 (this machine) creating files within 60 s of deleting thousands skips
                # the freed inodes one by one (`recently_deleted`), ~1 s of a 5 s cold run
                # that a user generating into a new folder does not pay.
                out = folder / f"out-{labels[generator]}-{index}"
                env = {"PYTHONPATH": str(generator)} if generator else None
                command = generate_command(generator, folder / "spec.yaml", out)
                cold, peak, cold_cpu, cold_sys = run_usage(command, env=env)
                floor = write_floor(out, folder / f"floor-{labels[generator]}-{index}")
                warm, peak_warm = run(command, env=env)
                checked = sum(run(command)[0] for command in check_rules_batches(out))
                edit, peak_edit = run(generate_command(
                    generator, folder / "edited" / "spec.yaml", out), env=env)
                if index:
                    row["cold"].append(cold)
                    row["cpu"].append(cold_cpu)
                    row["sys"].append(cold_sys)
                    row["floor"].append(floor[0])
                    row["floor cpu"].append(floor[1])
                    row["warm"].append(warm)
                    row["edit"].append(edit)
                    row["check"].append(checked)
                    row["rss"].extend((peak, peak_warm, peak_edit))
        for out in [*folder.glob("out-*"), *folder.glob("floor-*")]:
            shutil.rmtree(out)
        for generator, row in rows.items():
            median = {key: statistics.median(row[key])
                      for key in ("cold", "warm", "edit", "check")}
            ratio = {key: statistics.median(t / k for t, k in zip(row[key], row["check"],
                                                                  strict=True))
                     for key in ("cold", "warm", "edit")}
            print(f"{labels[generator]:>10} {size:>9} {median['cold']:>7.2f} "
                  f"{median['warm']:>7.2f} {median['edit']:>7.2f} {median['check']:>8.2f} "
                  f"{ratio['cold']:>9.2f} {ratio['warm']:>9.2f} {ratio['edit']:>9.2f} "
                  f"{max(row['rss']):>13.0f} {statistics.median(row['cpu']):>11.2f} "
                  f"{statistics.median(row['sys']):>10.2f} "
                  f"{statistics.median(row['floor']):>8.2f} "
                  f"{statistics.median(row['floor cpu']):>12.2f}", flush=True)


def _env(generator: Path | None) -> dict[str, str] | None:
    """The environment running `generator` (another checkout's generator/ folder) with this
    venv's dependencies; None: this checkout."""
    return {"PYTHONPATH": str(generator)} if generator else None


def _label(generator: Path | None) -> str:
    return str(generator) if generator else "this checkout"


def bench_test(work: Path, size: int, repeat: int,
               generators: list[Path] | None = None) -> None:
    """Per generator (interleaved repeat by repeat): `watchkeeper test --all` of `size`
    services next to `promtool check rules` of the same files, then one service changed.
    Besides wall time, the CPU (user+sys, children included) of the full run and of check
    rules: once the machine is saturated the wall ratio tends to their ratio."""
    full_flag = ["--all"] if test_supports_all() else []
    print(f"\n## watchkeeper test, {size} services (full run{' --all' if full_flag else ''}; "
          "re-test after one service changed)")
    trees = generators or [None]
    times: dict[int, dict[str, list[float]]] = {}
    for index in range(len(trees)):
        (work / f"test-{size}-{index}").mkdir()
        times[index] = {"full": [], "check": [], "retest": [], "full_cpu": [], "check_cpu": [],
                        "peak": []}
    print(f"load average at the start: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    for _ in range(repeat):
        for index, generator in enumerate(trees):
            env, folder = _env(generator), work / f"test-{size}-{index}"
            spec_file, out = folder / "spec.yaml", folder / "out"
            generate = [WATCHKEEPER, "generate", str(spec_file), "--out", str(out)]
            write_spec(spec_file, size)
            run(generate, env=env)
            checked, _, check_cpu = run_usage(check_rules(out))[:3]
            full, peak, full_cpu = run_usage([WATCHKEEPER, "test", str(out), *full_flag],
                                             env=env)[:3]
            for key, value in (("check", checked), ("check_cpu", check_cpu), ("full", full),
                               ("full_cpu", full_cpu), ("peak", peak)):
                times[index][key].append(value)
            write_spec(spec_file, size, changed=True)
            run(generate, env=env)
            times[index]["retest"].append(run([WATCHKEEPER, "test", str(out)], env=env)[0])
    print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    for index, generator in enumerate(trees):
        full, check, retest = (times[index][k] for k in ("full", "check", "retest"))
        full_cpu, check_cpu = times[index]["full_cpu"], times[index]["check_cpu"]
        ratio = statistics.median(f / c for f, c in zip(full, check, strict=True))
        cpu_ratio = statistics.median(f / c for f, c in zip(full_cpu, check_cpu, strict=True))
        again = statistics.median(r / f for r, f in zip(retest, full, strict=True))
        print(f"{_label(generator)}: check rules {statistics.median(check):.2f} s (CPU "
              f"{statistics.median(check_cpu):.2f} s) | test (full) {statistics.median(full):.2f}"
              f" s = {ratio:.1f}x check (CPU {statistics.median(full_cpu):.2f} s = "
              f"{cpu_ratio:.1f}x; peak RSS {max(times[index]['peak']):.0f} MiB) | re-test after "
              f"one change {statistics.median(retest):.2f} s = {again:.3f}x full "
              f"(runs {', '.join(f'{t:.2f}' for t in full)}; CPU = user+sys, children "
              "included)")


def bench_make_test_rules(repeat: int, generators: list[Path] | None = None) -> None:
    """`make test-rules` in each generator's checkout (its Makefile and example spec) with
    this venv, interleaved: cold (no results cache) with nothing changed since the last
    run, cold right after the spec was touched (its time set to now: a Makefile that skips
    an unneeded generate must run it then), and warm (cache as left)."""
    full_flag = "TEST_FLAGS=--all" if test_supports_all() else "TEST_FLAGS="
    print("\n## make test-rules on the example spec (spec/services.yaml)")
    trees = generators or [None]
    kinds = ("cold", "touched", "warm")
    wall = {(i, k): [] for i in range(len(trees)) for k in kinds}
    cpu = {(i, k): [] for i in range(len(trees)) for k in kinds}
    print(f"load average at the start: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    prefix = Path(sys.executable).parent.parent
    # `-o`: the venv counts as installed; another tree's `make setup` would otherwise
    # re-install it (its pyproject.toml newer than the stamp), pointing this venv's
    # editable `watchkeeper` at that tree for every later run, this tree's included
    venv = [f"VENV={prefix}", "-o", f"{prefix}/bin/.installed"]
    for _ in range(repeat):
        for index, generator in enumerate(trees):
            tree = generator.parent if generator else ROOT
            env = _env(generator)
            for kind in kinds:
                if kind == "touched":
                    os.utime(tree / "spec" / "services.yaml")
                flags = [] if kind == "warm" else [full_flag]
                took, _, used, _ = run_usage(["make", "-s", "test-rules", *flags, *venv],
                                          cwd=tree, env=env)
                wall[index, kind].append(took)
                cpu[index, kind].append(used)
    print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    names = {"cold": f"cold ({full_flag})", "touched": "cold, spec touched",
             "warm": "warm (cache as left)"}
    for index, generator in enumerate(trees):
        print(f"{_label(generator)}: " + " | ".join(
            f"{names[k]} {statistics.median(wall[index, k]):.2f} s, CPU "
            f"{statistics.median(cpu[index, k]):.2f} s" for k in kinds)
            + f" (cold runs {', '.join(f'{t:.2f}' for t in wall[index, 'cold'])}; CPU = "
            "user+sys, children included)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--test-services", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--budget-sets", type=int, default=0,
                        help="generate: services take this many sets of budgets in turn "
                        "(default 0: every service's set differs)")
    parser.add_argument("--unique-budgets", action="store_true",
                        help="generate: every budget of every service differs (the worst "
                        "case for reuse across services)")
    parser.add_argument("--only", action="append",
                        choices=["generate", "test", "test-rules"])
    parser.add_argument("--generator", type=Path, action="append",
                        help="time this checkout's generator/ folder instead (repeatable: "
                        "side by side, interleaved; test-rules runs `make` in its parent, "
                        "whose Makefile must not be newer-installed than this venv)")
    args = parser.parse_args()
    sections = args.only or ["generate", "test", "test-rules"]
    if shutil.which("promtool") is None:
        sys.exit("promtool is needed (make test-deps)")
    version = subprocess.run(["promtool", "--version"], capture_output=True, text=True,
                             check=False).stdout.splitlines()[0]
    print(f"{version}; {os.cpu_count()} cores; load {os.getloadavg()[0]:.1f}; medians of "
          f"{args.repeat}")
    with tempfile.TemporaryDirectory(prefix="wk-bench-") as tmp:
        work = Path(tmp)
        if "generate" in sections:
            bench_generate(work, args.sizes, args.repeat,
                           [g.resolve() for g in args.generator] if args.generator else None,
                           args.budget_sets, args.unique_budgets)
        generators = [g.resolve() for g in args.generator] if args.generator else None
        if "test" in sections:
            bench_test(work, args.test_services, args.repeat, generators)
    if "test-rules" in sections:
        bench_make_test_rules(args.repeat, generators)


if __name__ == "__main__":
    main()
