"""From a resolved spec to the full set of generated files (path → text). No I/O here."""

from __future__ import annotations

import itertools
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor

from watchkeeper import alertmanager
from watchkeeper.dashboards.build import dashboard_files
from watchkeeper.model import Piece, Service, Spec
from watchkeeper.rule_tests import test_file
from watchkeeper.rules import build_groups, rule_file
from watchkeeper.writers import HEADER, to_yaml

Files = dict[str, str]


# Below this many services a process pool costs more than it saves.
PARALLEL_MIN_SERVICES = 64


def service_alert_files(service: Service, header: str) -> Files:
    """A rule file and a promtool test file per rule group of the service:
    ``alerts/<service>.<section>.rules.yml`` and ``alerts/tests/<service>.<section>.test.yml``.

    promtool loads and evaluates every rule of every file a test lists, at every step of
    every test group; a test file listing only its own group's rules does a fraction of
    that work (and a changed budget re-tests only its group, see `watchkeeper test`).
    Groups never read each other's recordings, so each file stands alone.
    """
    files: Files = {}
    groups = build_groups(service)
    name = {id(g): f"{service.name}.{g.group.removeprefix(service.name + '-')}" for g in groups}
    for group in groups:
        files[f"alerts/{name[id(group)]}.rules.yml"] = to_yaml(rule_file([group]), header)
        if group.scenarios:
            listed = [f"../{name[id(g)]}.rules.yml" for g in _groups_checked(group, groups)]
            files[f"alerts/tests/{name[id(group)]}.test.yml"] = to_yaml(
                test_file(service, [group], listed), header)
    return files


def _groups_checked(group: Piece, groups: list[Piece]) -> list[Piece]:
    """`group` and every other group defining an alert or recording its scenarios check
    (a leak scenario also checks the static budget of the same count), in rule order."""
    alerts = {check.alert for s in group.scenarios for check in s.alert_checks}
    exprs = [check.expr for s in group.scenarios for check in s.expr_checks]
    return [g for g in groups if g is group or any(a.name in alerts for a in g.alerts)
            or any(r.record in expr for r in g.recordings for expr in exprs)]


def alert_files(spec: Spec, spec_name: str) -> Files:
    """`alerts/<service>.<section>.rules.yml` and `alerts/tests/<service>.<section>.test.yml`
    per rule group (see `service_alert_files`), and `alerts/alertmanager.yml` routing
    them."""
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
