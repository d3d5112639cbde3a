"""Shared fixtures: paths of the repo and a helper generating a spec into a folder; the order
of modules under pytest-xdist and the e2e detection-time table."""

from __future__ import annotations

import functools
import os
import shutil
import signal
import sys
import threading
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import settings

# Property tests check results, not speed: hypothesis' default 200 ms deadline per example is
# a bound on the machine (a shared 2-core box under `make test -n 4` misses it) and failed
# test_load_quick twice without a wrong result.
settings.register_profile("watchkeeper", deadline=None)
settings.load_profile("watchkeeper")

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_SPEC = REPO / "spec" / "services.yaml"


def pytest_configure(config: pytest.Config) -> None:
    """SIGTERM (a CI job's timeout, `kill`) ends the run as Ctrl-C does, with every
    fixture's teardown: the servers tests start run in sessions of their own (out of reach
    of a signal to the run's process group) and would otherwise outlive the run, with their
    logs and folders. In pytest-xdist's workers too."""
    if threading.current_thread() is threading.main_thread() and \
            signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, functools.partial(_interrupt, os.getpid()))


def _interrupt(pid: int, signum: int, frame: object) -> None:
    if os.getpid() != pid:  # a process a test forked (a pool's worker): dies of it as before
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    signal.signal(signum, signal.SIG_IGN)  # one teardown: a second SIGTERM does not cut it
    raise KeyboardInterrupt(f"signal {signum}")


def tool(command: str, package: str) -> str:
    """Path of a required test tool; a clear failure (never a skip) when it is missing."""
    path = shutil.which(command)
    if path is None:
        pytest.fail(f"{command} is missing: run `make test` (installs Debian's {package})")
    return path


@pytest.fixture(scope="session")
def promtool_path() -> str:
    return tool("promtool", "prometheus")


@pytest.fixture(scope="session")
def amtool() -> str:
    return tool("amtool", "prometheus-alertmanager")


# Real Prometheus/Alertmanager chains, and the sidecar against real Redis/PostgreSQL/
# pgbouncer: seconds to minutes each.
SLOW_PATHS = ("e2e", "contract", "test_exporters_sidecar.py")


# The e2e chains: minutes each of waiting on real time (windows, `for`, group_wait), little
# CPU. `make test` runs pytest-xdist workers a module at a time in collection order, so these
# go first, longest first, and overlap each other and the CPU-bound rest.
LONGEST_FIRST = ("test_vmalert_chain.py", "test_prometheus_chain.py", "test_ha.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests under SLOW_PATHS are `slow`; `make test-fast` (pytest -m "not slow") leaves
    them and the other marked tests out, `make test` runs all. In a pytest-xdist worker the
    LONGEST_FIRST modules move to the front (a stable sort: modules stay whole, the rest keeps
    its order); a plain run keeps the collection order."""
    for item in items:
        if any(part in SLOW_PATHS for part in Path(str(item.fspath)).relative_to(REPO).parts):
            item.add_marker(pytest.mark.slow)
    if os.environ.get("PYTEST_XDIST_WORKER"):
        items.sort(key=_rank)


def _rank(item: pytest.Item) -> int:
    name = Path(str(item.fspath)).name
    return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)


# --- the e2e detection-time table (tests/e2e) ----------------------------------------------
# A checked scenario reaches its test's report as a user property (tests/e2e/conftest.py);
# these hooks run where the reports arrive: the only process, or pytest-xdist's controller,
# which never loads tests/e2e/conftest.py.
E2E_OUTCOMES: list[tuple[str, dict]] = []  # (run name, outcome as JSON), in report order


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "teardown":
        E2E_OUTCOMES.extend(tuple(value) for name, value in report.user_properties
                            if name == "e2e_outcome")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Prints the table of every run and, when ``WK_E2E_REPORT`` names a file, writes it
    there as Markdown (docs/benchmarks-e2e.md is made so)."""
    if not E2E_OUTCOMES or hasattr(terminalreporter.config, "workerinput"):
        return
    chain = _e2e_chain()
    runs: dict[str, list] = {}
    for run, data in E2E_OUTCOMES:
        runs.setdefault(run, []).append(chain.outcome_from_json(data))
    text = "\n\n".join(f"### {name}\n\n{chain.table(outs)}" + _notes(outs)
                        for name, outs in runs.items())
    terminalreporter.section("e2e detection times")
    terminalreporter.write_line(text)
    if report := os.environ.get("WK_E2E_REPORT"):
        Path(report).write_text(text + "\n")


def _e2e_chain() -> ModuleType:
    """tests/e2e/chain.py, which formats the table (found as tests/e2e/conftest.py finds it)."""
    for path in (REPO / "tests" / "e2e", REPO / "examples" / "demo"):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))
    import chain

    return chain


def _notes(outcomes: list) -> str:
    """What a scenario observed beyond the times (HA: kills, pages and duplicates)."""
    lines = [f"* {out.scenario}: {note}" for out in outcomes for note in out.notes]
    return "\n\n" + "\n".join(lines) if lines else ""
