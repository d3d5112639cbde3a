"""`watchkeeper generate` owns only what it wrote (issue 8): foreign files in alerts/ and
dashboards/ survive any number of runs, a removed service's files go, a generated file
edited by hand stops the run (exit 2, nothing changed), and a crash mid-swap is not
mistaken for an edit."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import yaml
from watchkeeper import build_cache, writers

WATCHKEEPER = [sys.executable, "-m", "watchkeeper.cli"]
SERVICE = {"selector": {}, "language": "go", "runtime": {"memory": {"critical": "1GiB"}}}
SPEC = {"version": 1,
        "defaults": {"alertmanager": {"receivers": {
            "page": {"webhook_url": "http://127.0.0.1:9/page"},
            "ticket": {"webhook_url": "http://127.0.0.1:9/ticket"}}}},
        "services": [{**SERVICE, "name": name, "selector": {"job": name}}
                     for name in ("alpha", "beta")]}
FOREIGN = {"alerts/node.rules.yml": "groups: []\n",
           "alerts/tests/noise.test.yml": "rule_files: []\n",
           "dashboards/team.json": '{"uid": "team", "title": "ours"}\n',
           "dashboards/provisioning/extra.yaml": "apiVersion: 1\n"}


def owned(root: Path, service: str) -> list[str]:
    """The generated files of one service under `root` (rule files are per rule group)."""
    return sorted(str(p.relative_to(root)) for p in root.rglob(f"{service}.*")
                  if p.suffix in (".yml", ".json"))


def generate(spec: dict, out: Path, *extra: str) -> subprocess.CompletedProcess:
    path = out / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return subprocess.run([*WATCHKEEPER, "generate", str(path), "--out", str(out), *extra],
                          capture_output=True, text=True, check=False)


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "spec.yaml"}


def plant_foreign(root: Path) -> None:
    for relative, text in FOREIGN.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)


def test_foreign_files_survive_repeated_runs_and_removed_services_go(tmp_path):
    plant_foreign(tmp_path)
    for _ in range(3):
        result = generate(SPEC, tmp_path)
        assert result.returncode == 0, result.stderr
    for relative, text in FOREIGN.items():
        assert (tmp_path / relative).read_text() == text
    beta = owned(tmp_path, "beta")
    assert "dashboards/beta.json" in beta and any(p.endswith(".rules.yml") for p in beta)
    smaller = copy.deepcopy(SPEC)
    smaller["services"] = smaller["services"][:1]
    result = generate(smaller, tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"removed {len(beta)} no longer generated" in result.stdout
    assert owned(tmp_path, "beta") == []
    assert owned(tmp_path, "alpha")
    for relative, text in FOREIGN.items():
        assert (tmp_path / relative).read_text() == text
    hidden = [p.name for p in tmp_path.rglob(".*")
              if p.name not in (writers.MANIFEST, build_cache.FOLDER)]
    assert hidden == []  # no staging folder left behind (the build record may stay)


def test_only_touches_the_named_folder(tmp_path):
    assert generate(SPEC, tmp_path).returncode == 0
    (tmp_path / "dashboards" / "alpha.json").write_text("{}")  # an edit --only must not see
    result = generate(SPEC, tmp_path, "--only", "alerts")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "dashboards" / "alpha.json").read_text() == "{}"


def test_hand_edited_generated_file_is_exit_2_and_nothing_changes(tmp_path):
    assert generate(SPEC, tmp_path).returncode == 0
    rules = tmp_path / next(p for p in owned(tmp_path, "alpha") if p.endswith(".rules.yml"))
    rules.write_text(rules.read_text() + "# my tweak\n")
    changed = copy.deepcopy(SPEC)
    changed["services"][0]["runtime"]["memory"]["critical"] = "2GiB"
    changed["services"] = changed["services"][:1]  # would also remove beta's files
    before = snapshot(tmp_path)
    result = generate(changed, tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert f"{rules.relative_to(tmp_path)}: edited by hand" in result.stderr
    assert "regenerate or move your edit to the spec" in result.stderr
    assert snapshot(tmp_path) == before
    rules.unlink()  # discarding the edit is explicit
    assert generate(changed, tmp_path).returncode == 0
    assert "# my tweak" not in rules.read_text()


def test_discard_edits_overwrites_edited_files_but_never_foreign_ones(tmp_path):
    plant_foreign(tmp_path)
    assert generate(SPEC, tmp_path).returncode == 0
    rules = tmp_path / next(p for p in owned(tmp_path, "alpha") if p.endswith(".rules.yml"))
    rules.write_text("# my tweak\n")
    result = generate(SPEC, tmp_path, "--discard-edits")
    assert result.returncode == 0, result.stderr
    assert "# my tweak" not in rules.read_text()
    for relative, text in FOREIGN.items():
        assert (tmp_path / relative).read_text() == text


def test_deleting_an_edited_file_is_also_refused(tmp_path):
    assert generate(SPEC, tmp_path).returncode == 0
    dashboard = tmp_path / "dashboards" / "beta.json"
    dashboard.write_text(dashboard.read_text().replace('"title"', '"title" ', 1))
    smaller = copy.deepcopy(SPEC)
    smaller["services"] = smaller["services"][:1]
    result = generate(smaller, tmp_path)
    assert result.returncode == 2 and "dashboards/beta.json: edited by hand" in result.stderr
    assert dashboard.exists()


def test_a_foreign_file_where_output_goes_is_never_overwritten(tmp_path):
    (tmp_path / "alerts").mkdir()
    (tmp_path / "alerts" / ".watchkeeper-manifest").write_text("")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert generate(SPEC, elsewhere, "--only", "alerts").returncode == 0
    name = next(p for p in owned(elsewhere, "alpha") if p.endswith(".rules.yml"))
    (tmp_path / name).write_text("groups: []  # the team's own\n")
    result = generate(SPEC, tmp_path, "--only", "alerts")
    assert result.returncode == 2
    assert f"{name}: exists and was not written by watchkeeper" in result.stderr
    assert (tmp_path / name).read_text() == "groups: []  # the team's own\n"
    assert owned(tmp_path / "alerts", "beta") == []


def test_output_written_before_manifests_is_adopted_once(tmp_path):
    assert generate(SPEC, tmp_path).returncode == 0
    for manifest in tmp_path.rglob(writers.MANIFEST):
        manifest.unlink()  # as left by a watchkeeper without manifests
    plant_foreign(tmp_path)
    result = generate(SPEC, tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "alerts" / writers.MANIFEST).exists()
    for relative, text in FOREIGN.items():
        assert (tmp_path / relative).read_text() == text


def test_a_file_saying_it_is_generated_is_adopted_when_the_manifest_lost_it(tmp_path):
    """After a merge that kept an older manifest: generated files it does not list carry
    watchkeeper's header, so they are adopted, not refused as foreign."""
    assert generate(SPEC, tmp_path, "--only", "alerts").returncode == 0
    manifest = tmp_path / "alerts" / writers.MANIFEST
    lines = manifest.read_text().splitlines()
    manifest.write_text("".join(f"{line}\n" for line in lines if "beta" not in line))
    result = generate(SPEC, tmp_path, "--only", "alerts")
    assert result.returncode == 0, result.stderr
    assert "beta" in manifest.read_text()


def test_an_interrupted_swap_is_not_taken_for_an_edit(tmp_path, monkeypatch):
    assert generate(SPEC, tmp_path).returncode == 0
    changed = copy.deepcopy(SPEC)
    changed["services"][0]["runtime"]["memory"]["critical"] = "3GiB"
    changed["services"][1]["runtime"]["memory"]["critical"] = "3GiB"
    from watchkeeper.generate import generate as render
    from watchkeeper.spec import SpecFile, resolve

    resolved = resolve(SpecFile.model_validate(changed))
    stage = writers.Stage.create(tmp_path, ("alerts",))
    written = render(resolved, "spec.yaml", ("alerts",), sink=stage.put)
    real_replace, moved = writers.os.replace, []

    def crash_after_one(source, target):
        if moved and not str(target).endswith(writers.MANIFEST):
            raise KeyboardInterrupt
        real_replace(source, target)
        if not str(target).endswith(writers.MANIFEST):
            moved.append(target)

    monkeypatch.setattr(writers.os, "replace", crash_after_one)
    try:
        writers.commit(stage, written)
    except KeyboardInterrupt:
        pass
    finally:
        stage.discard()
    monkeypatch.undo()
    assert len(moved) == 1  # one file new, the others old: a half-done swap
    result = generate(changed, tmp_path, "--only", "alerts")
    assert result.returncode == 0, result.stderr
    texts = "".join((tmp_path / p).read_text() for p in owned(tmp_path, "beta"))
    assert "3GiB" in texts or "3221225472" in texts


def test_rules_only_spec_writes_no_routing_and_removes_old_routing(tmp_path):
    assert generate(SPEC, tmp_path, "--only", "alerts").returncode == 0
    assert (tmp_path / "alerts" / "alertmanager.yml").exists()
    rules_only = copy.deepcopy(SPEC)
    rules_only["defaults"]["alertmanager"] = {"receivers": "none"}
    result = generate(rules_only, tmp_path, "--only", "alerts")
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "alerts" / "alertmanager.yml").exists()
    assert not (tmp_path / "alerts" / "alertmanager-routes.yml").exists()
    assert owned(tmp_path, "alpha")


def test_worker_processes_write_into_the_stage(tmp_path, monkeypatch):
    """The process-pool path: workers write their services' files and send back digests
    only; the result equals the in-memory rendering, byte for byte."""
    from watchkeeper import generate as generation
    from watchkeeper.spec import SpecFile, resolve

    many = copy.deepcopy(SPEC)
    many["services"] = [{**SERVICE, "name": f"svc-{i}", "selector": {"job": f"svc-{i}"}}
                        for i in range(6)]
    services = resolve(SpecFile.model_validate(many))
    expected = generation.generate(services, "spec.yaml")
    monkeypatch.setattr(generation, "PARALLEL_MIN_SERVICES", 1)
    monkeypatch.setattr(generation.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert_staged_generation_writes(tmp_path, services, "spec.yaml", expected)


def assert_staged_generation_writes(root, spec, spec_name, expected) -> None:
    """`generate` of `spec` through a stage into `root`, committed (as the CLI does),
    writes exactly the `expected` files (path → text), byte for byte."""
    from watchkeeper import generate as generation

    stage = writers.Stage.create(root, ("alerts", "dashboards"))
    try:
        written = generation.generate(spec, spec_name, sink=stage.put)
        writers.commit(stage, written)
    finally:
        stage.discard()
    assert set(written) == set(expected)
    for relative, text in expected.items():
        assert (root / relative).read_text() == text
        assert written[relative] == writers.digest(text.encode())


def test_worker_tasks_cover_every_service_once_and_shrink_towards_the_end():
    """Tasks name services by index range: every service in one task, in order, none
    larger than CHUNK_MAX; the last ones small, so no worker waits on a big last task."""
    from watchkeeper import generate as generation

    for count in (1, 3, 64, 999, 1000, 10_000):
        ranges = generation._ranges(count, 2)
        assert [i for start, stop in ranges for i in range(start, stop)] == list(range(count))
        sizes = [stop - start for start, stop in ranges]
        assert max(sizes) <= generation.CHUNK_MAX
        assert sizes[-1] <= generation.CHUNK_MIN
        assert sizes == sorted(sizes, reverse=True)
