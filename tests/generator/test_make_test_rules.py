"""`make test-rules` regenerates the rules only when something generate reads or writes
changed: the real Makefile, run with `make -n` in a copy of the tree's layout whose files'
times are set one by one."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OLD, STAMPED, NEW = 1_000_000_000, 1_000_000_100, 1_000_000_200

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")

LAYOUT = (
    "generator/pyproject.toml", "exporters/pyproject.toml",
    "generator/watchkeeper/cli.py", "exporters/watchkeeper_exporters/__init__.py",
    "generator/watchkeeper/__pycache__/.compiled",
    ".venv/bin/.installed", ".venv/bin/python", ".venv/lib/python3.11/site-packages/x.pth",
    "spec/services.yaml", "spec/other.jsonnet",
    "alerts/.watchkeeper-manifest", "alerts/a.rules.yml", "alerts/tests/a.test.yml",
)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    (tmp_path / "scripts").mkdir()
    deps = tmp_path / "scripts/install-test-deps.sh"
    deps.write_text("#!/bin/sh\n")
    deps.chmod(0o755)
    for name in LAYOUT:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    stamp = tmp_path / ".watchkeeper-cache/make-rules.spec_services.yaml..venv.stamp"
    stamp.parent.mkdir()
    stamp.write_text("")
    for path in sorted(tmp_path.rglob("*"), key=lambda p: -len(p.parts)):
        os.utime(path, (OLD, OLD))
    os.utime(stamp, (STAMPED, STAMPED))
    os.utime(tmp_path / "generator/watchkeeper/__pycache__/.compiled", (STAMPED, STAMPED))
    return tmp_path


def regenerates(tree: Path, *make_args: str) -> bool:
    """Would `make test-rules` run `watchkeeper generate`?"""
    out = subprocess.run(["make", "-n", "test-rules", *make_args], cwd=tree, check=True,
                         capture_output=True, text=True).stdout
    assert "watchkeeper test ." in out
    return "watchkeeper generate" in out


def touch(path: Path) -> None:
    os.utime(path, (NEW, NEW))


def test_nothing_changed_skips_generate(tree: Path) -> None:
    assert not regenerates(tree)


@pytest.mark.parametrize("changed", [
    "spec/services.yaml", "generator/watchkeeper/cli.py", ".venv/bin/.installed",
    ".venv/lib/python3.11/site-packages", "alerts/a.rules.yml", "alerts/tests/a.test.yml",
    "alerts/.watchkeeper-manifest",
])
def test_a_changed_input_or_output_regenerates(tree: Path, changed: str) -> None:
    touch(tree / changed)
    assert regenerates(tree)


def test_a_removed_output_file_regenerates(tree: Path) -> None:
    (tree / "alerts/tests/a.test.yml").unlink()
    assert regenerates(tree)


def test_without_manifest_or_stamp_regenerates(tree: Path) -> None:
    (tree / ".watchkeeper-cache/make-rules.spec_services.yaml..venv.stamp").unlink()
    assert regenerates(tree)
    shutil.rmtree(tree / "alerts")
    assert regenerates(tree)


def test_another_venv_has_its_own_stamp(tree: Path) -> None:
    shutil.copytree(tree / ".venv", tree / "other")
    assert regenerates(tree, "VENV=other")


def test_a_jsonnet_spec_always_regenerates(tree: Path) -> None:
    assert regenerates(tree, "SPEC=spec/other.jsonnet")
