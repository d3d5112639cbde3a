"""Remembers which promtool checks and tests passed, keyed by everything their outcome
depends on, so `watchkeeper test` re-runs only what changed.

A key is the SHA-256 of the promtool version, the kind of run, and the bytes of every file
the run reads: a rule file for `check rules`; a test file and each rule file it lists for
`test rules`. Only passes are stored (a failure is always re-run and shown in full). What
each test file lists under `rule_files` is remembered too, keyed by the test file's own
digest: reading it back would mean parsing every test file's YAML on every run, which was
most of a re-run after one service changed (~0.7 s of ~1 s for 100 services). The
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

from watchkeeper import promtool

FORMAT = "watchkeeper promtool results 1"
FILE_NAME = "promtool.json"


class CacheError(Exception):
    """The cache path holds something watchkeeper did not write; it is left alone."""


def _digest(parts: list[bytes]) -> str:
    hasher = hashlib.sha256()
    for part in parts:
        hasher.update(len(part).to_bytes(8, "big"))
        hasher.update(part)
    return hasher.hexdigest()


def listed_patterns(text: bytes) -> list[str] | None:
    """The `rule_files` of a promtool test file's text, or None when it has none we can
    read (the test is then never cached). A file watchkeeper generated is read as text
    (`promtool.generated_rule_files`); any other is parsed, PyYAML imported only then
    (~15 ms, and ~10 ms to parse the example's SLO file)."""
    try:
        generated = promtool.generated_rule_files(text.decode("utf-8"))
    except UnicodeDecodeError:
        generated = None
    if generated is not None:
        return generated
    import yaml

    try:
        document = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError:
        return None
    patterns = document.get("rule_files") if isinstance(document, dict) else None
    if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
        return None
    return patterns


def listed_rule_files(test_file: Path, patterns: list[str]) -> list[Path] | None:
    """The rule files a promtool test file loads by its `rule_files` `patterns` (globs
    expanded as promtool does, relative to the test file), or None when one matches
    nothing, so the test is never cached."""
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
        # a test file's digest → its `rule_files` (see the module docstring)
        self.listed: dict[str, list[str]] = {}
        self.listed_used: dict[str, list[str]] = {}
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
        listed = document.get("rule_files") if document["format"] == FORMAT else None
        if isinstance(listed, dict):
            self.listed = {digest: patterns for digest, patterns in listed.items()
                           if isinstance(patterns, list)
                           and all(isinstance(p, str) for p in patterns)}

    def check_key(self, rule_file: Path) -> str | None:
        try:
            return _digest([FORMAT.encode(), self.version.encode(), b"check rules",
                            rule_file.read_bytes()])
        except OSError:
            return None

    def _patterns(self, text: bytes) -> list[str] | None:
        """The test file's `rule_files`, parsed only when its bytes were never seen."""
        own = hashlib.sha256(text).hexdigest()
        patterns = self.listed.get(own)
        if patterns is None:
            patterns = listed_patterns(text)
        if patterns is not None:
            self.listed_used[own] = patterns
        return patterns

    def test_key(self, test_file: Path) -> str | None:
        try:
            text = test_file.read_bytes()
        except OSError:
            return None
        patterns = self._patterns(text)
        rule_files = None if patterns is None else listed_rule_files(test_file, patterns)
        if rule_files is None:
            return None
        try:
            parts = [text]
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
                    "passed": sorted(self.passed & self.used),
                    "rule_files": dict(sorted(self.listed_used.items()))}
        handle, temporary = tempfile.mkstemp(prefix=".promtool-", suffix=".tmp",
                                             dir=self.path.parent)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                json.dump(document, stream, indent=0)
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

