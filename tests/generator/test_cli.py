"""The CLI as a user meets it: exit statuses, messages, and output that is never half-written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rule_helpers import write_spec

REPO = Path(__file__).resolve().parent.parent.parent
EXAMPLE = REPO / "spec" / "services.yaml"
WATCHKEEPER = [sys.executable, "-m", "watchkeeper.cli"]


def run(*args: str, env: dict | None = None, cwd: Path | None = None):
    return subprocess.run([*WATCHKEEPER, *args], capture_output=True, text=True, env=env,
                          cwd=cwd, check=False)


@pytest.mark.slow
def test_generate_then_test_passes(tmp_path):
    generated = run("generate", str(EXAMPLE), "--out", str(tmp_path), "--only", "alerts")
    assert generated.returncode == 0, generated.stderr
    tested = run("test", str(tmp_path))
    assert tested.returncode == 0, tested.stdout
    files = [*(tmp_path / "alerts").glob("*.rules.yml"), *(tmp_path / "alerts").glob("*/*.yml")]
    assert len(files) > 6  # a rule file and a test file per rule group of 3 services
    assert f"promtool: {len(files)} passed, 0 failed" in tested.stdout


def test_bad_spec_exits_2_without_traceback(tmp_path):
    spec = write_spec(tmp_path, {"version": 1, "services": [
        {"name": "Bad Name", "selector": {"job": "x"}, "language": "go"}]})
    result = run("validate", str(spec))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "services[0].name" in result.stderr


def test_a_failed_generate_keeps_the_previous_output(tmp_path):
    assert run("generate", str(EXAMPLE), "--out", str(tmp_path), "--only", "alerts").returncode == 0
    before = {p: p.read_bytes() for p in (tmp_path / "alerts").rglob("*") if p.is_file()}
    broken = tmp_path / "broken.yaml"
    broken.write_text(EXAMPLE.read_text().replace("p99: {warning: 200ms", "p99: {warning: 2x"))
    result = run("generate", str(broken), "--out", str(tmp_path), "--only", "alerts")
    assert result.returncode == 2
    after = {p: p.read_bytes() for p in (tmp_path / "alerts").rglob("*") if p.is_file()}
    assert after == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".alerts")]


@pytest.mark.slow
def test_failing_rule_tests_exit_1_and_name_the_file(tmp_path):
    assert run("generate", str(EXAMPLE), "--out", str(tmp_path), "--only", "alerts").returncode == 0
    rules = tmp_path / "alerts" / "tickets-api.http.rules.yml"
    rules.write_text(rules.read_text().replace("> 0.2\n", "> 0.3\n", 1))
    result = run("test", str(tmp_path))
    assert result.returncode == 1
    assert re.search(r"FAIL test rules: \S+/tickets-api\.http(\+[a-z_]+)*\.test\.yml",
                     result.stdout), result.stdout


@pytest.mark.slow
def test_missing_promtool_says_how_to_install(tmp_path):
    assert run("generate", str(EXAMPLE), "--out", str(tmp_path), "--only", "alerts").returncode == 0
    env = {**os.environ, "PATH": str(tmp_path / "empty")}
    result = run("test", str(tmp_path), env=env)
    assert result.returncode == 2
    assert "apt-get install prometheus" in result.stderr


def test_jsonnet_ext_str_reaches_the_spec(tmp_path):
    spec = tmp_path / "spec.jsonnet"
    spec.write_text("{version: 1, defaults: {alertmanager: {receivers: 'none'}},"
                    " services: [{name: std.extVar('name'), selector: {job: 'a'},"
                    " language: 'go', runtime: {memory: {critical: '1GiB'}}}]}")
    result = run("generate", str(spec), "--ext-str", "name=from-cli", "--out", str(tmp_path),
                 "--only", "alerts")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "alerts" / "from-cli.runtime.rules.yml").exists()


def test_schema_describes_units_as_users_write_them():
    import json

    result = run("schema")
    schema = json.loads(result.stdout)
    thresholds = schema["$defs"]["DurationThresholds"]["properties"]["critical"]
    assert "50ms" in json.dumps(thresholds)


def test_version():
    result = run("--version")
    assert result.returncode == 0 and result.stdout.startswith("watchkeeper 0.")


def test_ext_str_on_a_yaml_spec_is_an_error(tmp_path):
    result = run("validate", str(EXAMPLE), "--ext-str", "env=prod")
    assert result.returncode == 2
    assert "--ext-str sets Jsonnet external variables" in result.stderr
    assert "Traceback" not in result.stderr


def generated_files(root: Path) -> dict[str, bytes]:
    """The generated files on disk (not the manifests or the build record)."""
    return {str(p.relative_to(root)): p.read_bytes()
            for folder in ("alerts", "dashboards") for p in (root / folder).rglob("*")
            if p.is_file() and not p.name.startswith(".watchkeeper")}


def test_generate_summary_counts_what_changed_on_disk(tmp_path):
    """`wrote W files …; U unchanged; removed R no longer generated`, checked against the
    files on disk before and after each run: cold, warm, one service edited, one removed."""
    import copy

    from test_build_cache import CHANGED
    from test_ownership import SPEC, generate

    into = f"into {tmp_path / 'alerts'}/, {tmp_path / 'dashboards'}/"
    before: dict[str, bytes] = {}
    smaller = copy.deepcopy(CHANGED)
    smaller["services"] = smaller["services"][:1]
    runs = [("cold", SPEC), ("warm", SPEC), ("edit", CHANGED), ("removal", smaller)]
    seen = []
    for name, spec in runs:
        result = generate(spec, tmp_path)
        assert (result.returncode, result.stderr) == (0, ""), name
        after = generated_files(tmp_path)
        wrote = sum(1 for path, data in after.items() if before.get(path) != data)
        unchanged, gone = len(after) - wrote, len(before.keys() - after.keys())
        services = len(spec["services"])
        expected = (f"wrote {wrote} files for {services} service(s) {into}"
                    + (f"; {unchanged} unchanged" if unchanged else "")
                    + (f"; removed {gone} no longer generated" if gone else ""))
        assert result.stdout.splitlines() == [expected], name
        seen.append((wrote, unchanged, gone))
        before = after
    (cold, _, _), warm, edit, removal = seen
    assert cold > 0 and warm == (0, cold, 0)
    assert 0 < edit[0] < cold and edit[2] == 0  # beta's files, and what draws on them
    assert removal[2] > 0
