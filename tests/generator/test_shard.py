"""`watchkeeper generate --shard I/N`: rule files split across N evaluators by service.

Through the CLI, files on disk: the union of the N shards is exactly the unsharded output,
every per-service file lands in exactly one shard, shared files are whole in every shard,
adding a service moves no existing one, and each shard's files pass promtool on their own.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent.parent
EXAMPLE = REPO / "spec" / "services.yaml"
WATCHKEEPER = [sys.executable, "-m", "watchkeeper.cli"]


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*WATCHKEEPER, *args], capture_output=True, text=True, check=False)


def big_spec(folder: Path, names: list[str]) -> Path:
    """The example spec's services cloned under ``names``; which one a name clones depends on
    the name alone, so a service keeps its budgets whatever else the spec lists."""
    document = yaml.safe_load(EXAMPLE.read_text())
    templates = document["services"]
    document["services"] = [{**templates[sum(map(ord, name)) % len(templates)], "name": name,
                             "selector": {"job": name}} for name in names]
    path = folder / "spec.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not any(part.startswith(".")
                                       for part in p.relative_to(root).parts)}


def generate(spec: Path, out: Path, *extra: str) -> dict[str, bytes]:
    result = run("generate", str(spec), "--out", str(out), *extra)
    assert result.returncode == 0, result.stderr
    return tree(out)


def rule_owners(files: dict[str, bytes]) -> set[str]:
    return {Path(p).name.split(".")[0] for p in files
            if p.startswith("alerts/") and p.endswith(".rules.yml")}


NAMES = [f"svc-{i:02d}" for i in range(24)]


@pytest.mark.parametrize("count", [1, 2, 5])
def test_union_of_shards_is_exactly_the_unsharded_output(tmp_path: Path, count: int) -> None:
    spec = big_spec(tmp_path, NAMES)
    whole = generate(spec, tmp_path / "whole")
    shards = [generate(spec, tmp_path / f"shard{i}", "--shard", f"{i}/{count}")
              for i in range(1, count + 1)]
    union: dict[str, bytes] = {}
    for files in shards:
        for path, content in files.items():
            assert union.setdefault(path, content) == content, f"{path} differs between shards"
    assert union == whole
    per_service = {p for p in whole if p.endswith((".rules.yml", ".test.yml"))}
    assert per_service and "alerts/alertmanager.yml" in whole
    for path in per_service:
        holders = [i for i, files in enumerate(shards, 1) if path in files]
        assert len(holders) == 1, f"{path} is in shards {holders}"
    shared = {p: c for p, c in whole.items() if p not in per_service}
    for files in shards:  # routing and dashboards: the same for every evaluator
        assert {p: c for p, c in files.items() if p not in per_service} == shared
    if count > 1:  # 24 services: every shard gets some (rendezvous hashing spreads them)
        assert all(rule_owners(files) for files in shards)


def test_adding_a_service_moves_no_existing_service(tmp_path: Path) -> None:
    count = 4
    (tmp_path / "before").mkdir()
    (tmp_path / "after").mkdir()
    before = big_spec(tmp_path / "before", NAMES)
    after = big_spec(tmp_path / "after", [*NAMES[:10], "svc-new", *NAMES[10:]])
    for i in range(1, count + 1):
        old = generate(before, tmp_path / f"old{i}", "--shard", f"{i}/{count}", "--only",
                       "alerts")
        new = generate(after, tmp_path / f"new{i}", "--shard", f"{i}/{count}", "--only",
                       "alerts")
        assert rule_owners(new) - {"svc-new"} == rule_owners(old)
        # the existing services' rule and test files in this shard are byte for byte what
        # they were (shared files such as the routing may list the new service)
        def own(files: dict[str, bytes]) -> dict[str, bytes]:
            return {p: c for p, c in files.items()
                    if p.endswith((".rules.yml", ".test.yml")) and "svc-new" not in p}
        assert own(new) == own(old) and own(old)


def test_one_more_shard_only_moves_services_onto_it(tmp_path: Path) -> None:
    spec = big_spec(tmp_path, NAMES)
    old = {name: i for i in range(1, 4) for name in
           rule_owners(generate(spec, tmp_path / f"three{i}", "--shard", f"{i}/3",
                                "--only", "alerts"))}
    new = {name: i for i in range(1, 5) for name in
           rule_owners(generate(spec, tmp_path / f"four{i}", "--shard", f"{i}/4",
                                "--only", "alerts"))}
    assert old.keys() == new.keys() == set(NAMES)
    moved = {name for name in NAMES if old[name] != new[name]}
    assert moved and all(new[name] == 4 for name in moved)
    assert len(moved) < len(NAMES) // 2


def test_each_shard_passes_promtool_on_its_own(tmp_path: Path) -> None:
    for i in (1, 2):
        out = tmp_path / f"shard{i}"
        generate(EXAMPLE, out, "--shard", f"{i}/2", "--only", "alerts")
        if not rule_owners(tree(out)):
            continue
        tested = run("test", str(out))
        assert tested.returncode == 0, tested.stdout + tested.stderr
        assert " 0 failed" in tested.stdout


@pytest.mark.parametrize("value", ["0/3", "4/3", "2", "a/b", "1/0", "-1/2"])
def test_bad_shard_exits_2_with_one_line(tmp_path: Path, value: str) -> None:
    result = run("generate", str(EXAMPLE), "--out", str(tmp_path), "--shard", value)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "--shard" in result.stderr
    assert not (tmp_path / "alerts").exists()
