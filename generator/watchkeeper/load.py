"""Reading a spec file (YAML or Jsonnet) into validated services, with precise error locations.

Every problem becomes one :class:`Problem` naming its path (``services[1].http.latency.p99``)
and, for YAML, its line; the CLI prints them and exits 2. Nothing here raises anything
but :class:`SpecError` for bad input.
"""

from __future__ import annotations

import difflib
import json
import types
import typing
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ValidationError
from watchkeeper.model import Service, Spec
from watchkeeper.spec import SpecFile, resolve

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a spec: where it is and what to do about it."""

    file: str
    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.path or '(top level)'}: {self.message}"


class SpecError(Exception):
    """A spec that cannot be used; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]):
        super().__init__("\n".join(map(str, problems)))
        self.problems = problems


def format_loc(loc: Iterable[str | int]) -> str:
    """``('services', 1, 'http')`` → ``services[1].http``."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


# --- YAML with line numbers ----------------------------------------------------------------


def _line_map(node: yaml.Node, loc: Loc, lines: dict[Loc, int], dupes: list[tuple[Loc, int]]):
    """Record the 1-based line of every key and item, and any key written twice."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            child = (*loc, key)
            if key in seen:
                dupes.append((child, key_node.start_mark.line + 1))
            seen.add(key)
            lines[child] = key_node.start_mark.line + 1
            _line_map(value_node, child, lines, dupes)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = (*loc, index)
            lines[child] = item.start_mark.line + 1
            _line_map(item, child, lines, dupes)


def _read_yaml(path: Path, text: str) -> tuple[object, dict[Loc, int]]:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark else None
        message = f"YAML syntax error: {error.problem or error}"
        if error.context and error.context_mark and error.context_mark is not mark:
            message += f" ({error.context} started on line {error.context_mark.line + 1})"
        raise SpecError([Problem(str(path), "", line, message)]) from None
    except yaml.YAMLError as error:
        raise SpecError([Problem(str(path), "", None, f"YAML error: {error}")]) from None
    lines: dict[Loc, int] = {}
    dupes: list[tuple[Loc, int]] = []
    if node is not None:
        _line_map(node, (), lines, dupes)
    if dupes:
        raise SpecError([
            Problem(str(path), format_loc(loc), line, "key written twice; keep one")
            for loc, line in dupes
        ])
    return data, lines


def _read_jsonnet(path: Path, ext_vars: dict[str, str]) -> object:
    import _jsonnet  # the jsonnet binding; imported here so YAML users never load it

    try:
        return json.loads(_jsonnet.evaluate_file(str(path), ext_vars=ext_vars))
    except RuntimeError as error:
        message = str(error).strip().splitlines()
        raise SpecError([Problem(str(path), "", None, "Jsonnet error: " + " ".join(
            part.strip() for part in message))]) from None


# --- Validation errors → problems ------------------------------------------------------------


def _unwrap(annotation: object) -> object:
    """Strip Optional/Annotated/list layers down to the model class (if any)."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            options = [a for a in typing.get_args(annotation) if a is not type(None)]
            annotation = options[0] if len(options) == 1 else annotation
            if len(options) != 1:
                return annotation
        else:
            return annotation


def _model_at(loc: Loc) -> type[BaseModel] | None:
    """The input model class that sits at `loc` in a spec, to suggest its keys."""
    current: object = SpecFile
    for part in loc:
        current = _unwrap(current)
        if isinstance(part, int):
            args = typing.get_args(current)
            current = args[0] if args else None
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return None
        field = next((f for name, f in current.model_fields.items()
                      if (f.alias or name) == part), None)
        if field is None:
            return None
        current = field.annotation
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _keys_of(model: type[BaseModel]) -> list[str]:
    return [field.alias or name for name, field in model.model_fields.items()]


def _message(error: dict) -> str:
    kind, loc = error["type"], error["loc"]
    if kind == "extra_forbidden":
        model = _model_at(loc[:-1])
        known = _keys_of(model) if model else []
        close = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else (
            f"; expected one of: {', '.join(known)}" if known else "")
        return f"unknown key {loc[-1]!r}{hint}"
    if kind == "missing":
        return "required key is missing"
    message = error["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return message


def _problems(error: ValidationError, file: str, lines: dict[Loc, int]) -> list[Problem]:
    problems = []
    for item in error.errors():
        loc = tuple(item["loc"])
        probe = loc
        while probe and probe not in lines:
            probe = probe[:-1]
        problems.append(Problem(file, format_loc(loc), lines.get(probe), _message(item)))
    return problems


def load_spec_file(path: str | Path, ext_vars: dict[str, str] | None = None) -> SpecFile:
    """Read and validate a spec; raise :class:`SpecError` listing every problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise SpecError([Problem(str(path), "", None, f"cannot read: {error.strerror}")]) from None
    if path.suffix in (".jsonnet", ".libsonnet"):
        data, lines = _read_jsonnet(path, ext_vars or {}), {}
    else:
        data, lines = _read_yaml(path, text)
    if not isinstance(data, dict):
        raise SpecError([Problem(str(path), "", 1, "a spec is a mapping with 'version' and "
                                                   "'services'")])
    try:
        return SpecFile.model_validate(data)
    except ValidationError as error:
        raise SpecError(_problems(error, str(path), lines)) from None


def load_spec(path: str | Path, ext_vars: dict[str, str] | None = None) -> Spec:
    """Read, validate and resolve a spec into what builders consume."""
    return resolve(load_spec_file(path, ext_vars))


def load_services(path: str | Path,
                  ext_vars: dict[str, str] | None = None) -> tuple[Service, ...]:
    """The resolved services of a spec (see :func:`load_spec`)."""
    return load_spec(path, ext_vars).services
