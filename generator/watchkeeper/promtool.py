"""A small wrapper around promtool: run it, and parse what it prints into per-file results."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import NamedTuple

INSTALL_HINT = (
    "promtool was not found on PATH. It ships with Prometheus:\n"
    "  Debian/Ubuntu: sudo apt-get install prometheus   (or run `make test` as root)\n"
    "  elsewhere:     download Prometheus from prometheus.io and put promtool on PATH"
)
_HEADER = re.compile(r"^(?:Checking|Unit Testing:)\s+(?P<file>\S.*?)\s*$")


class PromtoolMissing(RuntimeError):
    """promtool is not installed; the message says how to install it."""

    def __init__(self) -> None:
        super().__init__(INSTALL_HINT)


@dataclass
class FileResult:
    file: str
    ok: bool
    details: list[str] = field(default_factory=list)


@dataclass
class Result:
    """The outcome of one promtool run: overall success and one entry per file."""

    ok: bool
    files: list[FileResult]
    output: str

    @property
    def failed(self) -> list[FileResult]:
        return [f for f in self.files if not f.ok]


def find_promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        raise PromtoolMissing()
    return path


def parse(output: str) -> list[FileResult]:
    """Split promtool's report into per-file results (SUCCESS or FAILED with the details)."""
    results: list[FileResult] = []
    for line in output.splitlines():
        if match := _HEADER.match(line):
            results.append(FileResult(match["file"], ok=False))
        elif results:
            stripped = line.strip()
            if stripped.startswith("SUCCESS"):
                results[-1].ok = True
            elif stripped and not stripped.startswith("FAILED"):
                results[-1].details.append(stripped)
    return results


# `promtool test rules` opens a fresh TSDB in $TMPDIR for every test group; on a disk
# that costs more waiting than the evaluation itself, so it gets a RAM-backed folder.
RAM_TMP = Path("/dev/shm")


@contextmanager
def scratch_env() -> Iterator[dict[str, str] | None]:
    """An environment whose TMPDIR is a private folder in RAM (removed afterwards), when
    the system has one and the user did not choose a TMPDIR; otherwise None (inherit)."""
    if "TMPDIR" in os.environ or not (RAM_TMP.is_dir() and os.access(RAM_TMP, os.W_OK)):
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="watchkeeper-promtool-", dir=RAM_TMP) as folder:
        yield {**os.environ, "TMPDIR": folder}


# promtool is a short-lived Go program with a small heap: Go's default (GOGC=100) collects
# it many times a second. Measured on the example spec's tests: ~20% less CPU with a
# collection every 4x growth and, when several promtool run side by side, one OS thread
# each for Go code (one process per core already keeps the cores busy). A user's own
# GOGC / GOMAXPROCS / GOMEMLIMIT win.
GO_TUNING = {"GOGC": "400"}
GO_PARALLEL = {"GOMAXPROCS": "1"}
# ... but with GOGC=400 alone a promtool testing hundreds of files in a row grew to 1.7-2.1
# GB resident (100 bench services, two processes; its live heap stays ~30-40 MB: each test
# group's fresh TSDB is garbage after the group), and faulting those pages in cost up to
# a fifth of its CPU at load. A soft limit makes Go collect before that: 280 MB resident,
# 2-5% less CPU quiet, ~12% at load 3-5 (docs/benchmarks.md, rule tests ninth pass). Far
# above any generated test's live heap (the example's SLO file: ~35 MB). Only with our
# GOGC: a user who chose the collector's pace gets no limit they did not ask for.
GO_MEMORY_LIMIT = {"GOMEMLIMIT": "256MiB"}


def go_env(env: dict[str, str] | None, parallel: bool) -> dict[str, str]:
    """`env` (default: this process's environment) with promtool's Go runtime tuned."""
    base = dict(os.environ if env is None else env)
    tuning = {**GO_TUNING, **(GO_PARALLEL if parallel else {})}
    if "GOGC" not in base:
        tuning.update(GO_MEMORY_LIMIT)
    return {**{k: v for k, v in tuning.items() if k not in base}, **base}


def run(args: Sequence[str], cwd: Path | None = None,
        env: dict[str, str] | None = None) -> Result:
    process = subprocess.run([find_promtool(), *args], cwd=cwd, capture_output=True,
                             text=True, check=False, env=env)
    output = process.stdout + process.stderr
    files = parse(output)
    ok = process.returncode == 0 and all(f.ok for f in files)
    return Result(ok, files, output)


def version() -> str:
    """promtool's full `--version` text (release, build and revision): part of cache keys."""
    process = subprocess.run([find_promtool(), "--version"], capture_output=True, text=True,
                             check=False)
    return (process.stdout + process.stderr).strip()


def cores() -> int:
    """CPUs this process may run on (a container's limit, not the host's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else \
        os.cpu_count() or 1


def default_jobs() -> int:
    """promtool processes at once unless the user says: one per core, one batch each.
    Each batch is one process, and a promtool start costs ~25 ms of CPU. Two per core
    gets more of a machine shared with other work (the scheduler shares cores by runnable
    thread) but costs ~0.15 CPU-s more on the example spec, quiet or not (more starts,
    time slicing): `--jobs` chooses (docs/benchmarks.md, rule tests seventh pass)."""
    return cores()


def batches(files: Sequence[Path | str], count: int, cwd: Path | None = None,
            weights: dict[str, float] | None = None) -> list[list[str]]:
    """Split `files` into at most `count` batches of similar total size (or `weights`,
    where given), keeping each batch in the given order (bigger files take longer to
    check and test)."""
    count = max(1, min(count, len(files)))
    weights = weights or {}
    sizes = {str(f): weights.get(str(f)) or _size(Path(cwd or ".") / f) for f in files}
    bins: list[list[str]] = [[] for _ in range(count)]
    loads = [0.0] * count
    for name in sorted(sizes, key=sizes.__getitem__, reverse=True):
        emptiest = loads.index(min(loads))
        bins[emptiest].append(name)
        loads[emptiest] += sizes[name]
    order = {str(f): index for index, f in enumerate(files)}
    return [sorted(b, key=order.__getitem__) for b in bins if b]


def _size(file: Path) -> int:
    try:
        return os.stat(file).st_size
    except OSError:
        return 0


@dataclass
class Run:
    """One kind of promtool run (`args`, e.g. ["test", "rules"]) over `files`, split into a
    batch per process (or one per `batch_bytes` of files, where fewer), balanced by
    `weights` where given (else by size)."""

    args: Sequence[str]
    files: Sequence[Path | str]
    weights: dict[str, float] | None = None
    batch_bytes: int | None = None


def run_together(runs: Sequence[Run], jobs: int | None = None,
                 cwd: Path | None = None) -> list[Result]:
    """Every run's batches in one pool of `jobs` processes (default: `default_jobs`): the
    biggest batches of the first run first, the next runs' after them, so no run waits for
    another to finish and the last to finish are small. One merged Result per run, its
    files in the order given.

    promtool checks and tests one file at a time on one core; batches keep its start-up
    cost small, and the report of each batch is still parsed per file."""
    jobs = jobs or default_jobs()
    plans = [_plan(each, jobs, cwd) for each in runs]
    tasks = [(index, part) for index, parts in enumerate(plans) for part in parts]
    results: list[list[Result]] = [[] for _ in runs]
    with scratch_env() as scratch:
        env = go_env(scratch, parallel=min(jobs, len(tasks)) > 1)
        if len(tasks) <= 1 or jobs == 1:
            outcomes = [run([*runs[i].args, *part], cwd, env) for i, part in tasks]
        else:
            with ThreadPoolExecutor(jobs) as pool:
                outcomes = list(pool.map(lambda task: run([*runs[task[0]].args, *task[1]],
                                                          cwd, env), tasks))
    for (index, _), outcome in zip(tasks, outcomes, strict=True):
        results[index].append(outcome)
    return [_merge(done, each.files) for done, each in zip(results, runs, strict=True)]


def _plan(job: Run, jobs: int, cwd: Path | None) -> list[list[str]]:
    """`job`'s batches, the biggest (by weight, else size) first."""
    if not job.files:
        return []
    root = Path(cwd or ".")
    sizes = {str(f): _size(root / f) for f in job.files}  # each file stat'ed once
    load = {name: (job.weights or {}).get(name) or size for name, size in sizes.items()}
    count = jobs if job.batch_bytes is None else \
        min(jobs, math.ceil(sum(sizes.values()) / job.batch_bytes))
    parts = batches(job.files, count, cwd, load)  # `load` is what `batches` would work out
    return sorted(parts, key=lambda part: sum(map(load.__getitem__, part)), reverse=True)


def _merge(results: Sequence[Result], files: Sequence[Path | str]) -> Result:
    """The results of one run's batches as one, its files in the order given."""
    if len(results) == 1:
        return results[0]
    order = {str(f): index for index, f in enumerate(files)}
    merged = sorted((f for r in results for f in r.files),
                    key=lambda f: order.get(f.file, len(order)))
    return Result(all(r.ok for r in results), merged, "".join(r.output for r in results))


def check_rules(files: Sequence[Path | str], cwd: Path | None = None,
                jobs: int | None = None) -> Result:
    """`promtool check rules`: syntax, PromQL parsing, duplicate rules (see CHECK)."""
    return run_together([replace(CHECK, files=files)], jobs, cwd)[0]


# Size-balanced batches, one per ~0.5 MB of rules (~0.3 CPU-s of checking): checking costs
# about the same per byte, and a promtool process costs 10-25 ms of CPU to start, about as
# much as checking the example spec's 21 rule files (120 KB: one batch).
CHECK = Run(["check", "rules"], (), batch_bytes=512 * 1024)


def test_rules(files: Sequence[Path | str], cwd: Path | None = None,
               jobs: int | None = None) -> Result:
    """`promtool test rules`: run unit-test files against the rule files they name.

    promtool runs the test groups of one file one after another on one core, so a file
    holding much of the work (the SLO tests of the example spec: two thirds of it) would
    keep one core busy long after the others are done. Such a file is run as several part
    files (its groups split in order, in a temporary folder, rule files named by absolute
    path) across the processes, and reported as the one file it is.
    """
    return check_and_test([], files, cwd, jobs)[1]


def check_and_test(rule_files: Sequence[Path | str], test_files: Sequence[Path | str],
                   cwd: Path | None = None, jobs: int | None = None) -> tuple[Result, Result]:
    """`check_rules(rule_files)` and `test_rules(test_files)` in one pool of processes:
    the checks (small) fill the cores as the tests' last batches finish, rather than
    running on their own before them (`watchkeeper test` runs both)."""
    jobs = jobs or default_jobs()
    check = replace(CHECK, files=rule_files)
    if jobs < 2 or not test_files:
        return tuple(run_together([check, Run(["test", "rules"], test_files)], jobs, cwd))
    with tempfile.TemporaryDirectory(prefix="watchkeeper-parts-",
                                     dir=RAM_TMP if RAM_TMP.is_dir() else None) as folder:
        parts, weights = split_big(test_files, jobs, cwd, Path(folder))
        tested, checked = run_together(
            [Run(["test", "rules"], [p for ps in parts.values() for p in ps], weights), check],
            jobs, cwd)
    return checked, rejoin(tested, parts)


def split_big(files: Sequence[Path | str], jobs: int, cwd: Path | None,
              folder: Path) -> tuple[dict[str, list[str]], dict[str, float]]:
    """Each test file → the files to run for it: itself, or, when it is more than a
    process' fair share of the estimated work (`estimated_ms`, of `jobs`) and holds several
    groups, up to `jobs` part files in `folder`; and a weight (estimated work) per file
    run, so the batches balance by work rather than bytes (the SLO file of the example is
    a quarter of the bytes and half the work)."""
    root = Path(cwd or ".")
    known: dict[Path, int] = {}
    costs = {str(f): estimated_ms(root / f, known) for f in files}
    share = sum(costs.values()) / jobs
    parts: dict[str, list[str]] = {}
    weights: dict[str, float] = {}
    for index, (name, cost) in enumerate(costs.items()):
        split = _split(root / name, jobs, folder / str(index)) if cost > share else None
        parts[name] = [part for part, _ in split] if split else [name]
        total = sum(work for _, work in split or ())
        weights.update((part, max(1.0, cost * work / total)) for part, work in split or ())
        if not split:
            weights[name] = max(1.0, cost)
    return parts, weights


def _cost(check_times: list[float], interval: float) -> float:
    """Estimated work of one test group: its evaluation steps, plus opening its storage
    and loading the rules (worth about ten steps)."""
    return 10 + max(check_times, default=0) / interval


# promtool's CPU for a test file, fitted on the example's 18 test files each run alone
# (docs/benchmarks.md, rule tests eighth pass): a few ms per file and per group (a fresh
# TSDB), and per KB of the listed rule files 0.6 ms per group (loading them) and 0.2 ms
# per evaluation step; the test file's own size costs nothing measurable.
_FILE_MS, _GROUP_MS, _LOAD_MS_PER_KB, _STEP_MS_PER_KB = 5.0, 5.0, 0.6, 0.2
_FOREIGN_MS_PER_KB = 5.0  # a file not cut as text: by its size (~ the example's mean)
# a group's start (`- ` at column 0 under `tests:`) or one of its check times, in one pass
_GROUP_OR_CHECK = re.compile(rb"^(?:- |\s+(?:- )?eval_time: *'?([0-9a-z.]+)'? *$)",
                             re.MULTILINE)


def estimated_ms(test_file: Path, sizes: dict[Path, int] | None = None) -> float:
    """Estimated CPU milliseconds of `promtool test rules test_file`, read with one regular
    expression pass (it runs on every test file before promtool starts); `sizes` keeps
    the rule files' sizes across calls (many test files list the same ones)."""
    try:
        text = test_file.read_bytes()
    except OSError:
        return _FILE_MS
    tests = text.find(b"\ntests:\n")
    head = None
    if text.startswith(_GENERATED.encode()) and tests >= 0:
        head = _cut_head(text[:tests + 1].decode("utf-8", "replace"))
    if head is None:
        return _FILE_MS + _FOREIGN_MS_PER_KB * len(text) / 1000
    rule_files, interval = head
    sizes = {} if sizes is None else sizes
    rules_kb = 0.0
    for name in rule_files:
        path = test_file.parent / name
        if path not in sizes:
            sizes[path] = _size(path)
        rules_kb += sizes[path] / 1000
    lasts: list[float] = []  # each group's last check time (s)
    for match in _GROUP_OR_CHECK.finditer(text, tests + len(b"\ntests:\n")):
        if match[1] is None:
            lasts.append(0.0)
        elif lasts:
            lasts[-1] = max(lasts[-1], _seconds(match[1].decode()))
    return _FILE_MS + sum(_GROUP_MS + rules_kb * (_LOAD_MS_PER_KB
                                                  + _STEP_MS_PER_KB * (1 + last / interval))
                          for last in lasts)


def _cut_head(head: str) -> tuple[list[str], float] | None:
    """The rule files and evaluation interval of a generated test file's lines before
    `tests:`; None when they are not laid out as watchkeeper writes them."""
    rule_files: list[str] = []
    interval = 60.0
    key = None
    for line in head.splitlines():
        if line.startswith("#") or not line:
            continue
        if line.startswith("- "):
            if key == "rule_files":
                rule_files.append(line[2:].strip())
            continue
        key, sep, value = line.partition(":")
        if not sep:
            return None
        if key == "evaluation_interval":
            interval = _seconds(value.strip()) or 60.0
    return rule_files, interval


_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


def _seconds(duration: object) -> float:
    return sum(float(n) * _UNITS[u] for n, u in _DURATION.findall(str(duration or "")))


def _split(test_file: Path, count: int, folder: Path) -> list[tuple[str, float]] | None:
    """`test_file`'s groups in up to `count` part files of similar estimated work (each
    part keeps its groups in file order), with that work; None when it cannot be split
    (one group, not a mapping, unreadable: promtool then reports it as it is)."""
    try:
        text = test_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    base = test_file.resolve().parent
    pieces = _pieces(text)
    if pieces is not None:
        pieces = pieces._replace(rule_files=[str(base / f) for f in pieces.rule_files])
    else:
        pieces = _parsed_pieces(text, base)
    if pieces is None:
        return None
    head, rule_files, interval, groups = pieces
    costs = [_cost(times, interval) for _, times in groups]
    bins: list[list[int]] = [[] for _ in range(min(count, len(groups)))]
    loads = [0.0] * len(bins)
    for index in sorted(range(len(groups)), key=costs.__getitem__, reverse=True):
        emptiest = loads.index(min(loads))
        bins[emptiest].append(index)
        loads[emptiest] += costs[index]
    folder.mkdir()
    written = []
    for number, members in enumerate(bins):
        path = folder / f"{test_file.stem}.part{number}.yml"
        path.write_text(head + "rule_files:\n" + "".join(f"- {json.dumps(f)}\n" for f in rule_files)
                        + "tests:\n" + "".join(groups[i][0] for i in sorted(members)),
                        encoding="utf-8")
        written.append((str(path), loads[number]))
    return written


class Pieces(NamedTuple):
    """A test file cut into what a part file is made of."""

    head: str  # the top-level lines other than `rule_files` and `tests`
    rule_files: list[str]
    interval: float  # seconds
    groups: list[tuple[str, list[float]]]  # each group's text and its check times


_GENERATED = "# Generated by watchkeeper from "
_EVAL_TIME = re.compile(r"^ +(?:- )?eval_time: *'?([0-9a-z.]+)'? *$", re.MULTILINE)
# A rule file name the cut takes as written: a plain YAML scalar that YAML reads as this
# string (ending in .yml/.yaml, so never a number, boolean or null).
_RULE_FILE = re.compile(r"[\w./+-]+\.ya?ml")


def _pieces(text: str) -> Pieces | None:
    """`_cut`, when the file holds several groups (one cannot be split)."""
    pieces = _cut(text)
    return pieces if pieces is not None and len(pieces.groups) >= 2 else None


def generated_rule_files(text: str) -> list[str] | None:
    """The `rule_files` of a test file watchkeeper generated, as written, read without a
    YAML parser (`_cut`); None for any other file (parse it)."""
    pieces = _cut(text)
    return None if pieces is None else pieces.rule_files


def _cut(text: str) -> Pieces | None:
    """A test file watchkeeper generated, cut as text (no YAML parser: ~40 ms less of
    serial start-up for the example's SLO file): the top-level lines other than
    `rule_files` and `tests` (JSON-compatible scalars), its rule files, its evaluation
    interval, and each test group's text with its check times. Such a file is block YAML
    with `rule_files` and `tests` as sequences at column 0 and plain scalars as rule file
    names; in block YAML nothing inside an entry starts at column 0 but the empty lines
    of a `|` block (a text of several paragraphs), so an entry runs to the next line that
    does. Anything else (a file edited, or not ours): None, and the
    file is parsed (`_parsed_pieces`)."""
    if not text.startswith(_GENERATED):
        return None
    head: list[str] = []
    rule_files: list[str] = []
    groups: list[list[str]] = []
    interval = 0.0
    key = None
    seen: set[str] = set()
    for line in text.splitlines(keepends=True):
        if line.startswith("#") or (line == "\n" and not (key == "tests" and groups)):
            continue
        if line.startswith(" ") or line == "\n":  # an empty line of a `|` block is text
            if key != "tests" or not groups:
                return None
            groups[-1].append(line)
        elif line.startswith("- "):
            if key == "rule_files":
                name = line[2:].strip()
                if not _RULE_FILE.fullmatch(name):
                    return None
                rule_files.append(name)
            elif key == "tests":
                groups.append([line])
            else:
                return None
        else:
            key, sep, value = line.partition(":")
            if not sep or key in seen or (key in ("rule_files", "tests") and value.strip()):
                return None
            seen.add(key)
            if key == "evaluation_interval":
                interval = _seconds(value.strip())
            if key not in ("rule_files", "tests"):
                if not re.fullmatch(r"[a-z_]+: [\w.]+\n", line):
                    return None
                head.append(line)
    if not {"rule_files", "tests"} <= seen:
        return None
    return Pieces("".join(head), rule_files, interval or 60.0,
                  [("".join(g), [_seconds(t) for t in _EVAL_TIME.findall("".join(g))])
                   for g in groups])


def _parsed_pieces(text: str, base: Path) -> Pieces | None:
    """`_pieces` of any test file, by parsing it: each group re-emitted on its own."""
    import yaml  # only here: the files watchkeeper generates are cut as text

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    try:
        document = yaml.load(text, Loader=loader)
    except yaml.YAMLError:
        return None
    if not isinstance(document, dict) or not isinstance(document.get("tests"), list) \
            or len(document["tests"]) < 2 or not isinstance(document.get("rule_files"), list) \
            or not all(isinstance(f, str) for f in document["rule_files"]):
        return None
    rest = {k: v for k, v in document.items() if k not in ("rule_files", "tests")}
    head = yaml.dump(rest, Dumper=dumper, sort_keys=False) if rest else ""
    groups = [(yaml.dump([group], Dumper=dumper, sort_keys=False), _check_times(group))
              for group in document["tests"]]
    return Pieces(head, [str(base / f) for f in document["rule_files"]],
                  _seconds(document.get("evaluation_interval")) or 60.0, groups)


def _check_times(group: object) -> list[float]:
    return [_seconds(check.get("eval_time")) for key in ("alert_rule_test", "promql_expr_test")
            for check in (group.get(key) or [] if isinstance(group, dict) else [])
            if isinstance(check, dict)]


def rejoin(result: Result, parts: dict[str, list[str]]) -> Result:
    """`result` of running part files reported per original file: passed when every part
    passed, with the details of every part that failed."""
    found = {f.file: f for f in result.files}
    files = []
    for name, ran in parts.items():
        if ran == [name]:
            if name in found:
                files.append(found[name])
            continue
        reports = [found[p] for p in ran if p in found]
        if reports:
            files.append(FileResult(name, len(reports) == len(ran) and all(r.ok for r in reports),
                                    [d for r in reports for d in r.details]))
    output = result.output
    for name, ran in parts.items():
        for part in ran:
            if part != name:
                output = output.replace(part, f"{name} (part {ran.index(part) + 1}/{len(ran)})")
    return Result(result.ok, files, output)
