"""From a resolved spec to the full set of generated files (path → text). No I/O here."""

from __future__ import annotations

import itertools
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor

from watchkeeper import alertmanager
from watchkeeper.dashboards.build import dashboard_files
from watchkeeper.model import Service, Spec
from watchkeeper.rule_tests import test_file
from watchkeeper.rules import build_groups, rule_file
from watchkeeper.signals import slo
from watchkeeper.writers import HEADER, to_yaml

Files = dict[str, str]


# Below this many services a process pool costs more than it saves.
PARALLEL_MIN_SERVICES = 64


def service_alert_files(service: Service, header: str) -> Files:
    """One service's rule file and promtool test file; its SLOs get a pair of their own
    (their scenarios span hours, so promtool evaluates them on a coarser step, and every
    other test need not evaluate them)."""
    groups = build_groups(service)
    slo_group = f"{service.name}-{slo.GROUP}"
    files: Files = {}
    for suffix, part, step in (
            ("", [g for g in groups if g.group != slo_group], None),
            (".slo", [g for g in groups if g.group == slo_group], slo.TEST_INTERVAL)):
        if part or not suffix:
            files[f"alerts/{service.name}{suffix}.rules.yml"] = to_yaml(rule_file(part), header)
            files[f"alerts/tests/{service.name}{suffix}.test.yml"] = to_yaml(test_file(
                service, part, f"../{service.name}{suffix}.rules.yml", step), header)
    return files


def alert_files(spec: Spec, spec_name: str) -> Files:
    """`alerts/<service>.rules.yml` and `alerts/tests/<service>.test.yml` per service, and
    `alerts/alertmanager.yml` routing them."""
    header = HEADER.format(spec=spec_name)
    files: Files = {"alerts/alertmanager.yml": to_yaml(
        alertmanager.config(spec.alertmanager), header)}
    for part in _map_services(service_alert_files, spec.services, header):
        files.update(part)
    return files


def _map_services(build: Callable[[Service, str], Files], services: Sequence[Service],
                  header: str) -> list[Files]:
    """`build` over every service, on every core when there are many.

    Each service's files depend on that service alone, so large specs are split across
    worker processes (forked: nothing is re-imported); the results come back in order.
    """
    workers = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    if len(services) < PARALLEL_MIN_SERVICES or workers < 2 or "fork" not in \
            multiprocessing.get_all_start_methods():
        return [build(service, header) for service in services]
    chunk = max(1, len(services) // (workers * 4))
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        return list(pool.map(build, services, itertools.repeat(header), chunksize=chunk))


# Each output folder and the function producing its files; `--only` picks among them.
OUTPUTS: dict[str, Callable[[Spec, str], Files]] = {
    "alerts": alert_files,
    "dashboards": dashboard_files,
}


def generate(spec: Spec, spec_name: str, only: Sequence[str] | None = None) -> Files:
    files: Files = {}
    for folder, build in OUTPUTS.items():
        if only is None or folder in only:
            files.update(build(spec, spec_name))
    return files
