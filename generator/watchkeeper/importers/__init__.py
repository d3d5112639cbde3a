"""Importers: Sloth and OpenSLO SLO documents to a watchkeeper spec.

Each importer reads its documents, maps every field it understands and fails, naming the
field, on anything it cannot translate faithfully: an SLO that imports must be the same SLO.
The result is validated as a watchkeeper spec before it is printed, so an imported SLO that
could never alert (say, a 90% objective against the 14.4× tier) is refused here too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydantic import ValidationError
from watchkeeper.load import Problem, SpecError, format_loc
from watchkeeper.spec import SpecFile

HEADER = "# Imported by watchkeeper from {source} ({kind}); review, then generate with `make`.\n"
SLOTH_WINDOW = re.compile(r"\{\{\s*\.window\s*\}\}")
JOB = re.compile(r'\bjob\s*=\s*"([^"\\]+)"')

Loc = tuple[str | int, ...]


@dataclass
class Document:
    """One YAML document of the input, with the line of every key and item in it."""

    index: int
    data: object
    lines: dict[Loc, int] = field(default_factory=dict)


@dataclass
class Context:
    """What an importer accumulates: problems (fatal) and notes (printed as comments)."""

    file: str
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def error(self, doc: Document, loc: Loc, message: str) -> None:
        line = _nearest_line(doc.lines, loc)
        prefix = (f"document {doc.index + 1}: " if doc.index else "")
        self.problems.append(Problem(self.file, prefix + format_loc(loc), line, message))


def _nearest_line(lines: dict[Loc, int], loc: Loc) -> int | None:
    while loc:
        if loc in lines:
            return lines[loc]
        loc = loc[:-1]
    return lines.get(())


def _walk(node: yaml.Node, loc: Loc, lines: dict[Loc, int]) -> None:
    lines[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = (*loc, key.value)
            lines[child] = key.start_mark.line + 1
            _walk(value, child, lines)
            lines[child] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, (*loc, i), lines)


def read_documents(path: str | Path) -> list[Document]:
    """Every YAML document in `path` (Sloth's multi-document files), with line numbers."""
    text = Path(path).read_text(encoding="utf-8")
    try:
        nodes = [n for n in yaml.compose_all(text, Loader=yaml.SafeLoader) if n is not None]
        datas = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        raise SpecError([Problem(str(path), "", mark.line + 1 if mark else None,
                                 f"not valid YAML: {getattr(error, 'problem', error)}")]) from None
    documents = []
    for i, (node, data) in enumerate(zip(nodes, datas, strict=True)):
        doc = Document(i, data)
        _walk(node, (), doc.lines)
        documents.append(doc)
    if not documents:
        raise SpecError([Problem(str(path), "", None, "no YAML document found")])
    return documents


def window_placeholder(query: str) -> str:
    """Sloth's Go template ``{{.window}}`` as watchkeeper's ``{{window}}``."""
    return SLOTH_WINDOW.sub("{{window}}", query)


def guess_selector(queries: Iterable[str], service: str) -> tuple[dict[str, str], bool]:
    """The service's scrape job when every query names the same `job=`; else its name."""
    jobs = {match for query in queries for match in JOB.findall(query)}
    if len(jobs) == 1:
        return {"job": jobs.pop()}, True
    return {"job": service}, False


def render(services: list[dict], ctx: Context, kind: str) -> str:
    """The spec text: validated as a watchkeeper spec, notes as comments at the top."""
    document = {"version": 1, "defaults": {"alertmanager": {"receivers": "none"}},
                "services": services}
    ctx.notes.append("defaults.alertmanager.receivers: none generates rules only; declare page "
                     "and ticket receivers to get alerts/alertmanager.yml as well")
    try:
        SpecFile.model_validate(document)
    except ValidationError as error:
        for item in error.errors():
            ctx.problems.append(Problem(ctx.file, "imported spec: " + format_loc(
                item["loc"]), None, item["msg"].removeprefix("Value error, ")))
    if ctx.problems:
        raise SpecError(ctx.problems)
    text = HEADER.format(source=Path(ctx.file).name, kind=kind)
    text += "".join(f"# note: {note}\n" for note in ctx.notes)
    return text + yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True,
                            width=100)


class _Dumper(yaml.SafeDumper):
    """Writes multi-line queries as literal blocks, as people write them."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str)


def percent(value: float) -> str:
    """An objective as the spec writes it: 99.9 → ``99.9%``."""
    return f"{value:.10g}%"
