"""`watchkeeper generate` stopped part-way (Ctrl-C, a CI job's timeout sending SIGTERM, a
worker killed by the kernel's OOM killer) leaves the previous output as it was and nothing of
its own behind: no staging folder, no shelf, no spill file, no worker process.

Real processes: the command is started on a spec big enough that it is still rendering when
its workers have put their first results on the shelf, and is signalled only then."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
import yaml
from bench_spec import bench_spec
from watchkeeper import cli, generate, load, writers

REPO = Path(__file__).resolve().parents[2]
OURS = (".watchkeeper-stage.", ".watchkeeper-spill.", ".watchkeeper-shelf.")
COMMAND = [sys.executable, "-m", "watchkeeper.cli", "generate"]
SAFE_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # PyYAML built without libyaml


@pytest.fixture(scope="module")
def big_spec(tmp_path_factory) -> Path:
    """1,000 services: a run is signalled ~1 s in, when its workers' first results are on
    the shelf, whatever the spec's size (it is read as the workers go), and would go on for
    3-4 s more; a smaller spec would save nothing but that margin. Written by libyaml's
    emitter (same text, 0.3 s instead of 1.2 s)."""
    path = tmp_path_factory.mktemp("interrupted") / "big.yaml"
    path.write_text(yaml.dump(bench_spec(1000), Dumper=SAFE_DUMPER, sort_keys=False))
    return path


@pytest.fixture
def generated(tmp_path) -> Path:
    """An output folder holding a previous run's output (3 services of the same spec)."""
    small = tmp_path / "small.yaml"
    small.write_text(yaml.safe_dump(bench_spec(3), sort_keys=False))
    out = tmp_path / "out"
    assert cli.main(["generate", str(small), "--out", str(out)]) == cli.EXIT_OK
    return out


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` and its bytes, but for those in staging folders."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not any(part.startswith(OURS) for part in p.parts)}


def leftovers(folder: Path) -> list[str]:
    return [str(p) for p in folder.rglob("*") if p.name.startswith(OURS)]


def held_by(paths: list[str]) -> list[str]:
    """What left folders hold (who wrote late: a worker's service files, or this
    process's shared ones), for a failure's message."""
    return [str(p) for path in paths for p in sorted(Path(path).rglob("*"))][:40]


def started(spec: Path, out: Path) -> tuple[subprocess.Popen, list[int]]:
    """`generate` running on `spec` into `out` (in a process group of its own), returned
    once its workers have put results on its shelf, with the workers' pids."""
    proc = subprocess.Popen([*COMMAND, str(spec), "--out", str(out)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=_sigint_as_usual)
    deadline = time.monotonic() + 120
    while not list(out.glob(".watchkeeper-stage.*/files.*")):
        if proc.poll() is not None:
            pytest.fail(f"generate ended ({proc.returncode}) before it could be interrupted: "
                        f"{proc.communicate()}")
        assert time.monotonic() < deadline, "no worker put anything on the shelf in 120 s"
        time.sleep(0.02)
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    return proc, [int(pid) for pid in children]


def _sigint_as_usual() -> None:
    """SIGINT as a terminal's command has it (a test run started in the background of a
    shell without job control ignores it, and its children would inherit that)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def assert_gone(pids: list[int]) -> None:
    deadline = time.monotonic() + 30
    while [pid for pid in pids if alive(pid)]:
        assert time.monotonic() < deadline, f"worker processes left running: {pids}"
        time.sleep(0.1)


def interrupt_self(proc: subprocess.Popen, workers: list[int], kind: signal.Signals) -> None:
    os.kill(proc.pid, kind)


def interrupt_group(proc: subprocess.Popen, workers: list[int], kind: signal.Signals) -> None:
    os.killpg(proc.pid, kind)  # as Ctrl-C in a terminal, or a runner killing the job's group


def kill_a_worker(proc: subprocess.Popen, workers: list[int], kind: signal.Signals) -> None:
    os.kill(workers[0], kind)


def interrupt_workers_first(proc: subprocess.Popen, workers: list[int],
                            kind: signal.Signals) -> None:
    """Ctrl-C as a busy machine may deliver it: the workers' copies well before the
    parent's. Workers that took it as a KeyboardInterrupt sent it back as their tasks'
    results, a first exception in the parent; its own signal then broke into the clean-up
    (staging folders left behind in CI) or hung it (4 tries of 4 here, past 120 s)."""
    for pid in workers:
        os.kill(pid, kind)
    time.sleep(0.2)
    os.kill(proc.pid, kind)


@pytest.mark.slow  # a 1,000-service run each: seconds on a busy machine
@pytest.mark.parametrize(("send", "kind", "status", "message"), [
    (interrupt_self, signal.SIGTERM, cli.EXIT_TERMINATED, "watchkeeper: terminated (SIGTERM)"),
    (interrupt_group, signal.SIGTERM, cli.EXIT_TERMINATED, "watchkeeper: terminated (SIGTERM)"),
    (interrupt_self, signal.SIGINT, cli.EXIT_INTERRUPTED, "watchkeeper: interrupted"),
    (interrupt_group, signal.SIGINT, cli.EXIT_INTERRUPTED, "watchkeeper: interrupted"),
    (interrupt_workers_first, signal.SIGINT, cli.EXIT_INTERRUPTED, "watchkeeper: interrupted"),
    (kill_a_worker, signal.SIGKILL, cli.EXIT_INTERNAL,
     "watchkeeper: a worker process ended abruptly (killed? out of memory?); nothing was "
     "changed"),
], ids=["sigterm", "sigterm-group", "sigint", "sigint-group", "sigint-workers-first",
        "worker-killed"])
def test_an_interrupted_run_changes_nothing_and_leaves_nothing(
        big_spec, generated, send, kind, status, message):
    before = snapshot(generated)
    proc, workers = started(big_spec, generated)
    try:
        assert workers, "the run has worker processes"
        send(proc, workers, kind)
        out, err = proc.communicate(timeout=120)
        assert (proc.returncode, err.strip()) == (status, message), out
        left = leftovers(generated.parent)
        assert left == [], held_by(left)
        assert snapshot(generated) == before
        assert_gone(workers)
    finally:  # whatever failed, no process of this test outlives it
        for pid in [proc.pid, *workers]:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        proc.wait()


def _forked(before: set[multiprocessing.process.BaseProcess]) -> list[int]:
    """The pids of this process's children alive now that were not in `before`."""
    return [p.pid for p in multiprocessing.active_children() if p not in before]


class _InterruptedWhileSubmitting(load.Loading):
    """A spec being read, and Ctrl-C while the first pool's later tasks are submitted
    (each reads the spec on first), once its workers are forked and writing."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.before = set(multiprocessing.active_children())  # another test's, say

    def more(self, count: int) -> bool:
        if _forked(self.before):
            raise KeyboardInterrupt
        return super().more(count)


def _shutdown_without_waiting(monkeypatch) -> None:
    """`shutdown` as Python 3.11 makes it after a `Thread.join` was interrupted: it takes
    the pool's manager thread for ended and returns while tasks still run."""
    shutdown = ProcessPoolExecutor.shutdown
    monkeypatch.setattr(ProcessPoolExecutor, "shutdown",
                        lambda self, wait=True, *, cancel_futures=False:
                        shutdown(self, wait=False, cancel_futures=cancel_futures))


@pytest.mark.parametrize("shutdown_waits", [True, False], ids=["shutdown", "early-shutdown"])
def test_an_interrupt_while_the_first_tasks_are_submitted_ends_the_workers(
        big_spec, tmp_path, monkeypatch, shutdown_waits):
    """Entering the pool submits its first tasks, reading the spec on for each: an
    interrupt there came before `with` had entered, so nothing shut the pool down and its
    workers wrote on into staging folders being removed (CI, session 24: one left). Now
    no worker is alive when `generate` raises, and nothing of the run is left; also when
    the pool's shutdown returns before its running tasks end."""
    monkeypatch.setattr(generate, "_workers", lambda services: 2)  # a pool on any machine
    if not shutdown_waits:
        _shutdown_without_waiting(monkeypatch)
    out = tmp_path / "out"
    out.mkdir()
    stage = writers.Stage.create(out, cli.OUTPUT_FOLDERS)
    loading = _InterruptedWhileSubmitting(big_spec)
    try:
        with pytest.raises(KeyboardInterrupt):
            generate.generate(loading, big_spec.name, sink=stage.put,
                              into=writers.Written(out))
        alive_after = _forked(loading.before)
    finally:
        stage.discard()
        loading.close()
        for pid in _forked(loading.before):  # the old code's, so as to fail
            os.kill(pid, signal.SIGKILL)
    assert alive_after == []
    assert leftovers(out) == []


@pytest.mark.slow
def test_a_killed_run_takes_its_workers_along_and_the_next_run_removes_what_it_left(
        big_spec, generated):
    """SIGKILL: no clean-up of its own. Its workers end with it (they would wait for work
    forever, holding the pipes its caller reads); its staging folders and shelf stay, marked
    with its pid, and the next run on the same output removes those and nothing else."""
    before = snapshot(generated)
    proc, workers = started(big_spec, generated)
    try:
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=120)  # returns: no worker holds its output pipes open
        assert_gone(workers)
    finally:
        for pid in [proc.pid, *workers]:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        proc.wait()
    left = leftovers(generated)
    assert left, "a killed run leaves its staging folders"
    host = os.uname().nodename
    for path in left:
        assert Path(path, writers.OWNER).read_text() == f"{host} {proc.pid}\n"
    assert snapshot(generated) == before
    kept = {  # what the next run must not touch
        generated / ".watchkeeper-stage.unmarked": None,  # an older version's, or anyone's
        generated / "alerts" / ".watchkeeper-stage.live": f"{host} 1\n",  # a run under way
        generated / "dashboards" / ".watchkeeper-stage.elsewhere": f"other-{host} {proc.pid}\n",
    }
    for folder, owner in kept.items():
        folder.mkdir()
        (folder / "x.rules.yml").write_text("groups: []\n")
        if owner:
            (folder / writers.OWNER).write_text(owner)
    assert cli.main(["generate", str(generated.parent / "small.yaml"), "--out",
                     str(generated)]) == cli.EXIT_OK
    assert sorted(leftovers(generated)) == sorted(str(folder) for folder in kept)
    assert snapshot(generated) == before


ONCE_INTERRUPTED = """
import os, signal, sys, time
from watchkeeper import cli
first = signal.Signals[sys.argv[1]]
cleaned = []
try:
    with cli._terminate_as_interrupt():
        try:
            os.kill(os.getpid(), first)
            time.sleep(5)  # interrupted: a handler runs between bytecodes
        finally:
            for second in (signal.SIGINT, signal.SIGTERM):
                os.kill(os.getpid(), second)
            time.sleep(0.05)  # a second handler would have run by now
            cleaned.append(first)
except (KeyboardInterrupt, cli.Terminated) as raised:
    print(type(raised).__name__, cleaned == [first],
          signal.getsignal(signal.SIGINT) is signal.default_int_handler,
          signal.getsignal(signal.SIGTERM) is signal.SIG_DFL)
"""


@pytest.mark.parametrize(("first", "raised"), [("SIGINT", "KeyboardInterrupt"),
                                               ("SIGTERM", "Terminated")])
def test_once_interrupted_the_clean_up_is_not_interrupted_again(first, raised):
    """After a first SIGINT or SIGTERM, a second one (Ctrl-C pressed twice, a runner's
    SIGTERM after its SIGINT) waits: a KeyboardInterrupt raised in the middle of the
    clean-up would leave staging folders behind. The handlers are put back after. In a
    process of its own: SIGTERM is passed on to the caller's child processes."""
    done = subprocess.run([sys.executable, "-c", ONCE_INTERRUPTED, first], text=True,
                          capture_output=True, timeout=60, preexec_fn=_sigint_as_usual)
    assert (done.returncode, done.stdout.split()) == (0, [raised, "True", "True", "True"]), \
        done.stderr


def test_signals_wait_for_the_commit_then_take_effect():
    """SIGINT during generate's commit (the swap into place) is held until the commit is
    done, then raised as it would have been: the output is old or new, never half."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # ignored in a
    reached = []  # background job without job control
    try:
        with pytest.raises(KeyboardInterrupt), cli._signals_held():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # a handler runs between bytecodes: it had its chance
            reached.append("the end of the block")
        assert reached == ["the end of the block"]
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, before)


def test_a_signal_during_the_commit_leaves_the_new_output_with_its_build_record(
        tmp_path, monkeypatch):
    """A signal held through the commit takes effect after it, with the build record
    (which says what made each file, for the next run's reuse) saved as part of it: not
    the new output beside the previous run's record (bench/interrupt.py found that)."""
    specs = {}
    for count in (2, 3):
        specs[count] = tmp_path / f"{count}.yaml"
        specs[count].write_text(yaml.safe_dump(bench_spec(count), sort_keys=False))
    for name in ("reference", "interrupted"):
        shutil.copy(specs[2], tmp_path / "spec.yaml")
        assert cli.main(["generate", str(tmp_path / "spec.yaml"), "--out",
                         str(tmp_path / name)]) == cli.EXIT_OK
    shutil.copy(specs[3], tmp_path / "spec.yaml")
    assert cli.main(["generate", str(tmp_path / "spec.yaml"), "--out",
                     str(tmp_path / "reference")]) == cli.EXIT_OK
    commit = writers.commit

    def interrupted_commit(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # held: arrives during the commit
        return commit(*args, **kwargs)

    monkeypatch.setattr(writers, "commit", interrupted_commit)
    before = signal.signal(signal.SIGINT, signal.default_int_handler)  # see above
    try:
        assert cli.main(["generate", str(tmp_path / "spec.yaml"), "--out",
                         str(tmp_path / "interrupted")]) == cli.EXIT_INTERRUPTED
    finally:
        signal.signal(signal.SIGINT, before)
    record = Path(".watchkeeper-cache", "generate.json")
    assert (tmp_path / "interrupted" / record).read_bytes() == \
        (tmp_path / "reference" / record).read_bytes()
    assert snapshot(tmp_path / "interrupted") == snapshot(tmp_path / "reference")


@pytest.mark.slow
def test_a_terminated_test_run_ends_its_promtool_runs_and_removes_their_scratch(tmp_path):
    """`watchkeeper test` on SIGTERM ends its promtool processes (it would wait for them,
    or, killed, leave them running) and removes their scratch folder (in RAM, /dev/shm)."""
    shutil.copytree(REPO / "alerts", tmp_path / "alerts")
    env = {k: v for k, v in os.environ.items() if k != "TMPDIR"}  # the scratch folder's
    proc = subprocess.Popen([sys.executable, "-m", "watchkeeper.cli", "test", str(tmp_path),
                             "--no-cache", "--all"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    promtools: dict[int, str] = {}  # pid → its TMPDIR
    try:
        deadline = time.monotonic() + 60
        while not promtools:
            assert proc.poll() is None, f"ended before a promtool started: {proc.communicate()}"
            assert time.monotonic() < deadline, "no promtool started in 60 s"
            for pid in children(proc.pid):
                with contextlib.suppress(OSError):
                    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
                    scratch = [v[7:].decode() for v in environ if v.startswith(b"TMPDIR=")]
                    if scratch and Path(f"/proc/{pid}/exe").resolve().name == "promtool":
                        promtools[pid] = scratch[0]
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        assert (proc.returncode, err.strip()) == (cli.EXIT_TERMINATED,
                                                  "watchkeeper: terminated (SIGTERM)"), out
        assert_gone(list(promtools))
        assert [folder for folder in promtools.values() if Path(folder).exists()] == []
    finally:
        for pid in [proc.pid, *promtools]:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        proc.wait()


def children(pid: int) -> list[int]:
    """The child processes of `pid`, started by any of its threads."""
    found = []
    with contextlib.suppress(OSError):
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                found += map(int, Path(f"/proc/{pid}/task/{task}/children").read_text().split())
    return found
