"""Remembers which promtool checks and tests passed, keyed by everything their outcome
depends on, so `watchkeeper test` re-runs only what changed.

A key is the SHA-256 of the promtool version, the kind of run, and the bytes of every file
the run reads: a rule file for `check rules`; a test file and each rule file it lists for
`test rules`. Only passes are stored (a failure is always re-run and shown in full). The
cache is one JSON file, by default `<dir>/.watchkeeper-cache/promtool.json`: safe to lose
or delete at any time, and never shared state the result depends on.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import tempfile
from pathlib import Path

import yaml

FORMAT = "watchkeeper promtool results 1"
FILE_NAME = "promtool.json"
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class CacheError(Exception):
    """The cache path holds something watchkeeper did not write; it is left alone."""


def _digest(parts: list[bytes]) -> str:
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(len(part).to_bytes(8, "big"))
        hasher.update(part)
    return hasher.hexdigest()


def listed_rule_files(test_file: Path) -> list[Path] | None:
    """The rule files a promtool test file loads (globs expanded as promtool does, relative
    to the test file), or None when that cannot be told, so the test is never cached."""
    try:
        document = yaml.load(test_file.read_bytes(), Loader=_Loader)
    except (OSError, yaml.YAMLError):
        return None
    patterns = document.get("rule_files") if isinstance(document, dict) else None
    if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
        return None
    files: list[Path] = []
    for pattern in patterns:
        matches = sorted(glob.glob(str(test_file.parent / pattern)))
        if not matches:
            return None
        files.extend(Path(m) for m in matches)
    return files


class ResultsCache:
    """Pass records loaded from, and saved back to, one JSON file."""

    def __init__(self, folder: Path, promtool_version: str):
        self.path = folder / FILE_NAME
        self.version = promtool_version
        self.passed: set[str] = set()
        self.used: set[str] = set()
        self._load()

    def _load(self) -> None:
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError):
            document = None
        if not (isinstance(document, dict)
                and str(document.get("format", "")).startswith(FORMAT.rsplit(" ", 1)[0])):
            raise CacheError(f"{self.path} was not written by watchkeeper; left alone, "
                             "nothing cached (move it or pass another --cache-dir)")
        passed = document.get("passed")
        if document["format"] == FORMAT and isinstance(passed, list):
            self.passed = {key for key in passed if isinstance(key, str)}

    def check_key(self, rule_file: Path) -> str | None:
        try:
            return _digest([FORMAT.encode(), self.version.encode(), b"check rules",
                            rule_file.read_bytes()])
        except OSError:
            return None

    def test_key(self, test_file: Path) -> str | None:
        rule_files = listed_rule_files(test_file)
        if rule_files is None:
            return None
        try:
            parts = [test_file.read_bytes()]
            for rule_file in rule_files:
                parts += [os.path.relpath(rule_file, test_file.parent).encode(),
                          rule_file.read_bytes()]
        except OSError:
            return None
        return _digest([FORMAT.encode(), self.version.encode(), b"test rules", *parts])

    def hit(self, key: str | None) -> bool:
        if key is None:
            return False
        self.used.add(key)
        return key in self.passed

    def record(self, key: str | None, ok: bool) -> None:
        if key is None:
            return
        self.used.add(key)
        if ok:
            self.passed.add(key)
        else:
            self.passed.discard(key)

    def save(self) -> None:
        """Write the passes this run relied on or produced (older entries are dropped),
        atomically, so an interrupted run leaves the previous cache or none."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        document = {"format": FORMAT, "promtool": self.version,
                    "passed": sorted(self.passed & self.used)}
        handle, temporary = tempfile.mkstemp(prefix=".promtool-", suffix=".tmp",
                                             dir=self.path.parent)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                json.dump(document, stream, indent=0)
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

