"""The signal shape docs/architecture.md promises, checked so it stays true."""

from __future__ import annotations

import ast
import dataclasses
import json
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest
from pydantic import BaseModel
from watchkeeper.cli import main
from watchkeeper.load import load_spec
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


REPO = SIGNALS_DIR.parents[2]
RESOLVED_SPECS = [
    (REPO / "spec" / "services.yaml", None),
    (REPO / "examples" / "demo" / "spec.jsonnet", {"webhook": "http://127.0.0.1:9095"}),
    (REPO / "tests" / "generator" / "scenarios" / "every_resolved_type.yaml", None),
]


def _reachable(value: object, path: str = "spec") -> Iterator[tuple[str, object]]:
    """Every object reachable from a resolved value, with its path."""
    yield path, value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        for f in dataclasses.fields(value):
            yield from _reachable(getattr(value, f.name), f"{path}.{f.name}")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _reachable(key, f"{path}[{key!r}] (key)")
            yield from _reachable(item, f"{path}[{key!r}]")
    elif isinstance(value, list | tuple | set | frozenset):
        for i, item in enumerate(value):
            yield from _reachable(item, f"{path}[{i}]")


@pytest.mark.parametrize(("path", "ext"), RESOLVED_SPECS, ids=lambda p: getattr(p, "name", ""))
def test_the_resolved_spec_holds_no_pydantic_type(path: Path, ext: dict | None):
    """Past the loader everything is plain frozen dataclasses and values: builders never see
    an input model (its defaults, aliases or validators)."""
    spec = load_spec(path, ext)
    kinds: set[str] = set()
    for where, value in _reachable(spec):
        kinds.add(type(value).__name__)
        assert not isinstance(value, BaseModel), f"{where} is a pydantic {type(value).__name__}"
        assert type(value).__module__.split(".")[0] != "pydantic", where
        if dataclasses.is_dataclass(value):
            assert type(value).__dataclass_params__.frozen, f"{where}: {type(value).__name__}"
    if path.name == "every_resolved_type.yaml":  # the walk did reach the types in question
        assert {"Slo", "SloLatency", "SloEvents", "SloErrorRatio", "SloAlerting",
                "EmailReceiver", "Routing", "Tier"} <= kinds, kinds


def test_an_slo_without_alerting_still_gets_its_panels(tmp_path):
    """`alerting: false` (recordings and panels only) generates, with a burn-rate panel that
    draws no tier line and links no alert."""
    out = tmp_path / "out"
    assert main(["generate", str(RESOLVED_SPECS[2][0]), "--out", str(out)]) == 0
    board = json.loads((out / "dashboards" / "shop.json").read_text())
    panels = [p for p in board["panels"] if p.get("title") == "raw: burn rate"]
    assert len(panels) == 1
    steps = panels[0]["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [step["value"] for step in steps] == [None]  # the base colour, no threshold line


def test_rows_never_share_a_base():
    """Panel ids are a row's base plus a slot: two rows on one base collide as soon as one
    service has both (jobs and SLOs did, and generate failed with a traceback)."""
    import importlib
    import pkgutil

    from watchkeeper import naming, signals
    from watchkeeper.model import Row

    modules = [naming, *(importlib.import_module(f"watchkeeper.signals.{m.name}")
                         for m in pkgutil.iter_modules(signals.__path__))]
    rows = {value for module in modules for value in vars(module).values()
            if isinstance(value, Row)}
    bases = [row.base for row in rows]
    assert len(rows) >= 6 and len(set(bases)) == len(bases), sorted(
        (row.base, row.key) for row in rows)
