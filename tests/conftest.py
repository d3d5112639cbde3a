"""Shared fixtures: paths of the repo and a helper generating a spec into a folder."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_SPEC = REPO / "spec" / "services.yaml"


@pytest.fixture(scope="session")
def promtool_path() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail("promtool is missing: run `make test` (installs Debian's prometheus)")
    return path
