"""Shared fixtures: paths of the repo and a helper generating a spec into a folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_SPEC = REPO / "spec" / "services.yaml"


def tool(command: str, package: str) -> str:
    """Path of a required test tool; a clear failure (never a skip) when it is missing."""
    path = shutil.which(command)
    if path is None:
        pytest.fail(f"{command} is missing: run `make test` (installs Debian's {package})")
    return path


@pytest.fixture(scope="session")
def promtool_path() -> str:
    return tool("promtool", "prometheus")


@pytest.fixture(scope="session")
def amtool() -> str:
    return tool("amtool", "prometheus-alertmanager")


# Real Prometheus/Alertmanager chains, and the sidecar against real Redis/PostgreSQL/
# pgbouncer: seconds to minutes each.
SLOW_PATHS = ("e2e", "contract", "test_exporters_sidecar.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests under SLOW_PATHS are `slow`; `make test-fast` (pytest -m "not slow") leaves
    them and the other marked tests out, `make test` runs all."""
    for item in items:
        if any(part in SLOW_PATHS for part in Path(str(item.fspath)).relative_to(REPO).parts):
            item.add_marker(pytest.mark.slow)
