"""The e2e chain's fixtures: the demo stack (examples/demo) under steady load, module-wide.

The detection-time table of every scenario run is printed at the end of the session and, when
``WK_E2E_REPORT`` names a file, written there as Markdown (docs/benchmarks-e2e.md is made so).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
DEMO = HERE.parents[1] / "examples" / "demo"
for path in (HERE, DEMO):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import chain  # noqa: E402


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not chain.OUTCOMES:
        return
    sections = [f"### {name}\n\n{chain.table(outs)}" + _notes(outs)
                for name, outs in chain.OUTCOMES.items()]
    text = "\n\n".join(sections)
    terminalreporter.section("e2e detection times")
    terminalreporter.write_line(text)
    if report := os.environ.get("WK_E2E_REPORT"):
        Path(report).write_text(text + "\n")



def _notes(outcomes: list[chain.Outcome]) -> str:
    """What a scenario observed beyond the times (HA: kills, pages and duplicates)."""
    lines = [f"* {out.scenario}: {note}" for out in outcomes for note in out.notes]
    return "\n\n" + "\n".join(lines) if lines else ""
