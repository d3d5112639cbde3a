"""From resolved services to the full set of generated files (path → text). No I/O here."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from watchkeeper import alertmanager
from watchkeeper.dashboards.build import dashboard_files
from watchkeeper.rule_tests import test_file
from watchkeeper.rules import build_groups, rule_file
from watchkeeper.spec import Service
from watchkeeper.writers import HEADER, to_yaml

Files = dict[str, str]


def alert_files(services: Sequence[Service], spec_name: str) -> Files:
    """`alerts/<service>.rules.yml` and `alerts/tests/<service>.test.yml` per service, and
    `alerts/alertmanager.yml` routing them."""
    header = HEADER.format(spec=spec_name)
    files: Files = {"alerts/alertmanager.yml": to_yaml(
        alertmanager.config(services[0].alertmanager), header)}
    for service in services:
        groups = build_groups(service)
        files[f"alerts/{service.name}.rules.yml"] = to_yaml(rule_file(groups), header)
        files[f"alerts/tests/{service.name}.test.yml"] = to_yaml(
            test_file(service, groups, f"../{service.name}.rules.yml"), header)
    return files


# Each output folder and the function producing its files; `--only` picks among them.
OUTPUTS: dict[str, Callable[[Sequence[Service], str], Files]] = {
    "alerts": alert_files,
    "dashboards": dashboard_files,
}


def generate(services: Sequence[Service], spec_name: str,
             only: Sequence[str] | None = None) -> Files:
    files: Files = {}
    for folder, build in OUTPUTS.items():
        if only is None or folder in only:
            files.update(build(services, spec_name))
    return files
