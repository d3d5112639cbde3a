"""A warm `watchkeeper generate` builds only services whose inputs changed (build_cache):
the files are byte-for-byte those of a cold run, an edited file is never taken for a
built one, another generator rebuilds everything, and a record file watchkeeper did not
write is left alone."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from test_ownership import SPEC, WATCHKEEPER, snapshot
from watchkeeper import build_cache, cli, memo
from watchkeeper import generate as generation

CHANGED = copy.deepcopy(SPEC)
CHANGED["services"][1]["runtime"] = {"memory": {"critical": "3GiB"}}  # beta alone


def run(spec: dict, out: Path, *extra: str) -> int:
    (out / "spec.yaml").write_text(yaml.safe_dump(spec))
    try:
        return cli.main(["generate", str(out / "spec.yaml"), "--out", str(out), *extra])
    except SystemExit as done:
        return int(done.code or 0)


@pytest.fixture
def built(monkeypatch) -> list[str]:
    """Names of the services whose alert files are built (not reused). alpha and beta
    differ only by name: the memo (tests/generator/test_memo.py) is off, so that each is
    built under its own name."""
    monkeypatch.setattr(memo, "abstract", lambda service: None)
    names: list[str] = []
    real = generation.OUTPUTS["alerts"].per_service

    def spy(service, spec_name, parts=None):
        names.append(service.name)
        return real(service, spec_name, parts)

    monkeypatch.setitem(generation.OUTPUTS, "alerts",
                        generation.Output(spy, generation.OUTPUTS["alerts"].shared))
    return names


def test_only_the_changed_service_is_built_again_and_output_equals_a_cold_run(
        tmp_path, built):
    warm, cold = tmp_path / "warm", tmp_path / "cold"
    warm.mkdir(), cold.mkdir()
    assert run(SPEC, warm) == 0
    assert built == ["alpha", "beta"]
    built.clear()
    assert run(SPEC, warm) == 0
    assert built == []
    assert run(CHANGED, warm) == 0
    assert built == ["beta"]
    assert run(CHANGED, cold) == 0
    ignore = {".watchkeeper-cache/generate.json"}
    assert {k: v for k, v in snapshot(warm).items() if k not in ignore} == \
        {k: v for k, v in snapshot(cold).items() if k not in ignore}


def test_an_edited_or_missing_file_is_built_not_reused(tmp_path, built):
    assert run(SPEC, tmp_path) == 0
    rules = sorted((tmp_path / "alerts").glob("alpha.*.rules.yml"))[0]
    rules.write_text(rules.read_text() + "# mine\n")
    built.clear()
    assert run(SPEC, tmp_path) == 2  # the edit is reported as before, nothing changed
    assert built == ["alpha"]
    assert rules.read_text().endswith("# mine\n")
    rules.unlink()
    built.clear()
    assert run(SPEC, tmp_path) == 0
    assert built == ["alpha"] and rules.exists()


def test_another_generator_builds_everything(tmp_path, built, monkeypatch):
    assert run(SPEC, tmp_path) == 0
    monkeypatch.setattr(build_cache, "generator_digest", lambda: "another generator")
    built.clear()
    assert run(SPEC, tmp_path) == 0
    assert built == ["alpha", "beta"]


def test_a_record_file_watchkeeper_did_not_write_is_left_alone(tmp_path, built):
    record = tmp_path / ".watchkeeper-cache" / "generate.json"
    record.parent.mkdir()
    record.write_text(json.dumps({"mine": True}))
    assert run(SPEC, tmp_path) == 0
    built.clear()
    assert run(SPEC, tmp_path) == 0
    assert built == ["alpha", "beta"]
    assert json.loads(record.read_text()) == {"mine": True}


def test_worker_processes_reuse_files_too(tmp_path, monkeypatch):
    monkeypatch.setattr(generation, "PARALLEL_MIN_SERVICES", 1)
    monkeypatch.setattr(generation.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    warm, cold = tmp_path / "warm", tmp_path / "cold"
    warm.mkdir(), cold.mkdir()
    assert run(SPEC, warm) == 0
    before = snapshot(warm)
    assert run(CHANGED, warm) == 0
    assert run(CHANGED, cold) == 0
    after, expected = snapshot(warm), snapshot(cold)
    record = ".watchkeeper-cache/generate.json"
    assert {k: v for k, v in after.items() if k != record} == \
        {k: v for k, v in expected.items() if k != record}
    assert after[record] != before[record]  # beta's key and files changed
    assert json.loads(after[record])["services"] == json.loads(expected[record])["services"]



def record_keys(out: Path) -> dict[str, str]:
    document = json.loads((out / ".watchkeeper-cache" / "generate.json").read_text())
    return {name: entry["key"] for name, entry in document["services"].items()}


def test_a_library_edited_in_place_builds_everything_again(tmp_path):
    """A library generation imports, edited without a new version (as an editable install
    is): a copy of grafanalib first on PYTHONPATH, run by the CLI as a user runs it.
    Untouched, a run keeps every service's key (reused); edited, no key stays."""
    import grafanalib

    lib = tmp_path / "lib"
    shutil.copytree(Path(grafanalib.__file__).parent, lib / "grafanalib",
                    ignore=shutil.ignore_patterns("__pycache__"))
    env = {**os.environ, "PYTHONPATH": str(lib)}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(SPEC))
    command = [*WATCHKEEPER, "generate", str(tmp_path / "spec.yaml"), "--out", str(tmp_path)]

    def generate() -> dict[str, str]:
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        assert (done.returncode, done.stderr) == (0, "")
        return record_keys(tmp_path)

    where = subprocess.run([sys.executable, "-c", "import grafanalib; print(grafanalib.__file__)"],
                           env=env, capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(lib))  # the copy is what generation imports
    first = generate()
    assert generate() == first  # nothing edited: the same keys, every service reused
    core = lib / "grafanalib" / "core.py"
    core.write_text(core.read_text() + "\n# edited in place, same version\n")
    edited = generate()
    assert edited.keys() == first.keys()
    assert [name for name in first if edited[name] == first[name]] == []


def test_entry_offsets_by_name_hash_act_as_a_dict_of_the_names():
    """The record's index keeps a hash and an offset per service (no names): looked up by
    name it answers what a dict built from the same entries answers, the last of a name
    given twice included, and nothing for a name not given."""
    from watchkeeper.build_cache import Offsets

    entries = [(f"svc-{i}", 100 * i) for i in range(500)] + [("svc-7", 99_999)]
    offsets, expected = Offsets(entries), dict(entries)
    assert len(offsets) == len(entries)
    for name in [*expected, "svc-500", "", "SVC-1"]:
        assert offsets.get(name) == expected.get(name)
    assert Offsets(reversed(entries)).get("svc-3") == 300
