"""The signal shape docs/architecture.md promises, checked so it stays true."""

from __future__ import annotations

import ast
from pathlib import Path

from watchkeeper.signals import SIGNALS
from watchkeeper.spec import SpecFile

SIGNALS_DIR = Path(__file__).resolve().parents[2] / "generator" / "watchkeeper" / "signals"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_no_signal_imports_the_dashboards_or_the_spec_model():
    for path in SIGNALS_DIR.glob("*.py"):
        bad = {m for m in _imports(path)
               if m.startswith("watchkeeper.dashboards") or m == "watchkeeper.spec"}
        assert not bad, f"{path.name} imports {bad}"


def test_every_declared_key_is_in_the_spec_schema():
    defs = SpecFile.model_json_schema(by_alias=True)["$defs"]
    service = defs["ServiceSpec"]["properties"]
    for signal in SIGNALS:
        for key in signal.keys:
            if key.section is None:
                assert key.name in service, key.path
            else:
                section = f"{key.section.title()}Section"
                assert key.name in defs[section]["properties"], key.path


def test_signal_names_and_keys_are_unique():
    names = [signal.name for signal in SIGNALS]
    paths = [key.path for signal in SIGNALS for key in signal.keys]
    assert len(set(names)) == len(names)
    assert len(set(paths)) == len(paths)


def test_docs_spec_names_every_key():
    """docs/spec.md documents every key of the schema (it is where the example spec points)."""
    text = (SIGNALS_DIR.parents[2] / "docs" / "spec.md").read_text()
    defs = SpecFile.model_json_schema(by_alias=True)["$defs"]
    keys = {key for model in defs.values() for key in model.get("properties", {})}
    keys |= set(SpecFile.model_json_schema(by_alias=True)["properties"])
    missing = sorted(key for key in keys if f"`{key}" not in text and f"{key}:" not in text
                     and f".{key}`" not in text)
    assert missing == []
