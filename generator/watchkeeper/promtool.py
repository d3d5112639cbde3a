"""A small wrapper around promtool: run it, and parse what it prints into per-file results."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

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


def run(args: Sequence[str], cwd: Path | None = None) -> Result:
    process = subprocess.run([find_promtool(), *args], cwd=cwd, capture_output=True,
                             text=True, check=False)
    output = process.stdout + process.stderr
    files = parse(output)
    ok = process.returncode == 0 and all(f.ok for f in files)
    return Result(ok, files, output)


def check_rules(files: Sequence[Path | str], cwd: Path | None = None) -> Result:
    """`promtool check rules`: syntax, PromQL parsing, duplicate rules."""
    return run(["check", "rules", *map(str, files)], cwd)


def test_rules(files: Sequence[Path | str], cwd: Path | None = None) -> Result:
    """`promtool test rules`: run unit-test files against the rule files they name."""
    return run(["test", "rules", *map(str, files)], cwd)
