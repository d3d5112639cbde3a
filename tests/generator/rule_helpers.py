"""Test helpers: generate a spec into a temporary folder and run promtool over it."""

from __future__ import annotations

from pathlib import Path

import yaml
from watchkeeper import promtool
from watchkeeper.generate import alert_files
from watchkeeper.load import load_spec
from watchkeeper.writers import write_tree


def generate_alerts(spec: Path, out: Path) -> Path:
    """Generate alerts/ for `spec` under `out`; return the alerts folder."""
    write_tree(out, alert_files(load_spec(spec), spec.name), owned=("alerts",))
    return out / "alerts"


RULES_ONLY = {"receivers": "none"}


def write_spec(folder: Path, document: dict, name: str = "spec.yaml") -> Path:
    """Write a test spec. Specs declare their Alertmanager receivers (or `none`); a test spec
    that says nothing about routing is a rules-only one here."""
    defaults = document.get("defaults") or {}
    if "alertmanager" not in defaults:
        document = {**document, "defaults": {**defaults, "alertmanager": RULES_ONLY}}
    path = folder / name
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def run_promtool(alerts: Path) -> tuple[promtool.Result, promtool.Result]:
    rules = sorted(alerts.glob("*.rules.yml"))
    tests = sorted((alerts / "tests").glob("*.test.yml"))
    return promtool.check_rules(rules), promtool.test_rules(tests)


def load_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def group_test_files(alerts: Path, service: str, section: str) -> list[Path]:
    """The test files holding the tests of one rule group (`section`) of `service`: groups
    may share one, ``<service>.<section>[+<section>...].test.yml``, and a group's scenarios
    that also check other groups' alerts may be apart,
    ``<service>.<section>.with-<section>.test.yml``."""
    return sorted(path for path in (alerts / "tests").glob(f"{service}.*.test.yml")
                  if section in path.name.removeprefix(f"{service}.").removesuffix(".test.yml")
                  .split(".with-")[0].split("+"))


def group_test_file(alerts: Path, service: str, section: str) -> Path:
    """The test file of one rule group (see `group_test_files`) shared with the groups its
    tests sit beside: not one loading only the groups a part of its tests reads
    (``.with-`` or, for test groups of a shared file that read fewer groups, a file of
    those: `rule_tests.lanes_apart`), unless there is no other."""
    found = [p for p in group_test_files(alerts, service, section) if ".with-" not in p.name]
    assert found, (service, section)
    return max(found, key=lambda p: len(load_yaml(p)["rule_files"]))
