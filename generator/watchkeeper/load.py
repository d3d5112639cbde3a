"""Reading a spec file (YAML or Jsonnet) into validated services, with precise error locations.

Every problem becomes one :class:`Problem` naming its path (``services[1].http.latency.p99``)
and, for YAML, its line; the CLI prints them and exits 2. Nothing here raises anything
but :class:`SpecError` for bad input.
"""

from __future__ import annotations

import difflib
import json
import re
import types
import typing
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ValidationError
from watchkeeper.model import Service, Spec, StoredServices
from watchkeeper.spec import Shared, SpecFile, resolve, resolve_service, routing
from watchkeeper.spill import Lines, Records

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


# libyaml's parser when PyYAML was built with it (wheels are), else the pure-Python one.
FastLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _parse_once(text: str) -> tuple[yaml.Node | None, object]:
    """Compose the node tree and construct the data from those same nodes: one parse.

    The line map is taken from the nodes before construction, because the constructor
    rewrites mappings with merge keys (``<<``) in place.
    """
    loader = FastLoader(text)
    try:
        node = loader.get_single_node()
        lines: dict[Loc, int] = {}
        dupes: list[tuple[Loc, int]] = []
        if node is not None:
            _line_map(node, (), lines, dupes)
        data = loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()
    return (lines, dupes), data


def _syntax_problem(path: Path, text: str, error: yaml.YAMLError) -> Problem:
    """One problem for a YAML error, worded by the pure-Python parser.

    libyaml words some errors differently; bad input is rare, so it is parsed once more
    with PyYAML's own parser to keep the messages (and their lines) stable either way.
    """
    if FastLoader is not yaml.SafeLoader:
        try:
            yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as pure:
            error = pure
    if isinstance(error, yaml.MarkedYAMLError):
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark else None
        message = f"YAML syntax error: {error.problem or error}"
        if error.context and error.context_mark and error.context_mark is not mark:
            message += f" ({error.context} started on line {error.context_mark.line + 1})"
        return Problem(str(path), "", line, message)
    return Problem(str(path), "", None, f"YAML error: {error}")


def _read_yaml(path: Path, text: str) -> tuple[object, dict[Loc, int]]:
    try:
        (lines, dupes), data = _parse_once(text)
    except yaml.YAMLError as error:
        raise SpecError([_syntax_problem(path, text, error)]) from None
    if dupes:
        raise SpecError([
            Problem(str(path), format_loc(loc), line, "key written twice; keep one")
            for loc, line in dupes
        ])
    return data, lines


# --- The quick read: no line numbers unless something is wrong --------------------------------


class _Doubt(Exception):
    """The quick read is unsure (a key written twice, a merge key, an unusual tag): read
    carefully."""


_CAREFUL = object()  # what `_quick_read` returns when the careful read must decide


_TAG = "tag:yaml.org,2002:"
# What plain YAML scalars may resolve to; anything else (merge keys `<<`, explicit tags of
# other kinds) goes to the careful read, which handles all of YAML.
_SCALAR_TAGS = {_TAG + kind for kind in ("null", "bool", "int", "float", "timestamp", "str")}


def _stream_read(text: str) -> object:
    """The data of a YAML document built from the parser's events one at a time, so the
    node graph of the whole document never exists (it peaks at several times the size of
    the data); scalars are resolved and constructed exactly as `yaml.safe_load` does."""
    loader = FastLoader(text)
    try:
        loader.get_event()  # stream start
        if loader.check_event(yaml.StreamEndEvent):
            return None
        loader.get_event()  # document start
        data = _Events(loader).value()
        loader.get_event()  # document end
        if not loader.check_event(yaml.StreamEndEvent):
            raise _Doubt  # several documents: the careful read words the error
        return data
    finally:
        loader.dispose()


# Distinct plain scalars kept by `_Events` at most: repeated budgets and keys hit within any
# window; the spec's own distinct texts (service names, selectors) must not be held all at
# once, or the parent's memory would grow with the number of services.
_PLAIN_HELD = 4096


class _Events:
    """The values of a YAML parser's events, one value at a time (aliases share the
    anchored object, as PyYAML's do). Plain scalars without tag or anchor (nearly every
    key and value of a spec) are resolved once per text: the same text always resolves
    and constructs to the same immutable value (null, bool, int, float, timestamp, str),
    so each distinct one pays for PyYAML's resolver and constructor once, not per use."""

    def __init__(self, loader: yaml.SafeLoader) -> None:
        self._loader = loader
        self._get = loader.get_event
        self._anchors: dict[str, object] = {}
        self._plain: dict[str, object] = {}

    def value(self) -> object:
        """The value starting at the loader's next event."""
        return self._of(self._get())

    def _of(self, event: yaml.Event) -> object:
        kind = type(event)
        if kind is yaml.ScalarEvent:
            if event.tag is None and event.anchor is None:
                if not event.implicit[0]:  # quoted, untagged: always a string
                    return event.value
                found = self._plain.get(event.value, self)
                return self._scalar(event, self._plain) if found is self else found
            return self._scalar(event, None)
        if kind is yaml.AliasEvent:
            if event.anchor not in self._anchors:
                raise _Doubt
            return self._anchors[event.anchor]
        return self._collection(event, kind)

    def _scalar(self, event: yaml.ScalarEvent, plain: dict[str, object] | None) -> object:
        """A scalar resolved and constructed exactly as `yaml.safe_load` does (kept in
        `plain` by its text when given)."""
        loader = self._loader
        tag = event.tag
        if tag is None or tag == "!":
            tag = loader.resolve(yaml.ScalarNode, event.value, event.implicit)
        if tag not in _SCALAR_TAGS:
            raise _Doubt
        value: object = event.value if tag == _TAG + "str" else loader.yaml_constructors[tag](
            loader, yaml.ScalarNode(tag, event.value, style=event.style))
        if event.anchor is not None:
            self._anchors[event.anchor] = value
        if plain is not None:
            if len(plain) >= _PLAIN_HELD:  # names and selectors are distinct per service
                plain.clear()
            plain[event.value] = value
        return value

    def _collection(self, event: yaml.Event, kind: type) -> list | dict:
        is_list = kind is yaml.SequenceStartEvent
        node_kind, end, plain = ((yaml.SequenceNode, yaml.SequenceEndEvent, _TAG + "seq")
                                 if is_list else
                                 (yaml.MappingNode, yaml.MappingEndEvent, _TAG + "map"))
        tag = event.tag
        if tag is None and not self._loader.yaml_path_resolvers:
            tag = plain  # what the resolver answers for any untagged collection then
        elif tag is None or tag == "!":
            tag = self._loader.resolve(node_kind, None, event.implicit)
        if tag != plain:
            raise _Doubt
        collection: list | dict = [] if is_list else {}
        if event.anchor is not None:
            self._anchors[event.anchor] = collection
        get, of = self._get, self._of
        if is_list:
            while type(event := get()) is not end:
                collection.append(of(event))
            return collection
        while type(event := get()) is not end:
            key = of(event)
            try:
                if key in collection or key == "<<":  # a key twice; a merge key: careful read
                    raise _Doubt
            except TypeError:  # a key that is itself a collection
                raise _Doubt from None
            collection[key] = of(get())
        return collection


def _unique_pairs(pairs: list[tuple[str, object]]) -> dict[str, object]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _Doubt
    return result


def _yaml_float(text: str) -> object:
    """A JSON number with a fraction or exponent as YAML 1.1 reads it (`1e3` is a string)."""
    return yaml.load(text, Loader=FastLoader)


def _not_json(text: str) -> object:
    raise _Doubt  # NaN, Infinity: Python's json accepts them, YAML does not


def _quick_read(text: str) -> object:
    """The data of a spec without keeping the YAML node graph or any line number.

    A spec is read carefully (`_read_yaml`: every node's line, keys written twice) only
    when this read is unsure or validation fails: valid specs, the common case, never pay
    for line numbers (for 5,000 services: 270 MB and 4 s for a JSON-style spec through
    the YAML parser, 60 ms with `json`). JSON text (YAML's subset) is read with `json`,
    with numbers and keys checked to mean what YAML would make of them; any doubt goes
    to the careful read, so every message stays as it was.
    """
    try:
        if text.lstrip()[:1] == "{":
            try:
                return json.loads(text, object_pairs_hook=_unique_pairs,
                                  parse_float=_yaml_float, parse_constant=_not_json)
            except ValueError:  # not JSON: YAML in flow style
                pass
        return _stream_read(text)
    except (_Doubt, yaml.YAMLError):
        return _CAREFUL


def _read_jsonnet(path: Path, ext_vars: dict[str, str]) -> object:
    import _jsonnet  # the jsonnet binding; imported here so YAML users never load it

    try:
        return json.loads(_jsonnet.evaluate_file(str(path), ext_vars=ext_vars))
    except RuntimeError as error:
        raise SpecError([_jsonnet_problem(path, str(error))]) from None


_JSONNET_PLACE = re.compile(r"(\S+?\.(?:jsonnet|libsonnet)):(\d+):[\d\-()]*:?\s*")


def _jsonnet_problem(path: Path, text: str) -> Problem:
    """The first line of a Jsonnet error, at the file:line where it happened (the
    innermost frame Jsonnet prints first), not at the top of the spec."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    first = lines[0] if lines else text.strip()
    place = _JSONNET_PLACE.search(text)
    message = _JSONNET_PLACE.sub("", first).strip()
    if place is None:
        return Problem(str(path), "", None, f"Jsonnet error: {message}")
    return Problem(place[1], "", int(place[2]), f"Jsonnet error: {message}")


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
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        model = _model_at(loc)
        keys = f" with keys {', '.join(_keys_of(model))}" if model else ""
        return f"expected a mapping{keys}, got {error.get('input')!r}"
    if kind == "list_type":
        return f"expected a list (items starting with '- '), got {error.get('input')!r}"
    message = error["msg"]
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return re.sub(r" or instance of \w+", "", message)  # never an internal class name


def _problems(error: ValidationError, file: str, lines: dict[Loc, int]) -> list[Problem]:
    problems = []
    for item in error.errors():
        loc = tuple(item["loc"])
        probe = loc
        while probe and probe not in lines:
            probe = probe[:-1]
        problems.append(Problem(file, format_loc(loc), lines.get(probe), _message(item)))
    return problems


def _not_utf8(path: Path, error: UnicodeDecodeError) -> Problem:
    """The problem of a spec file that is not UTF-8, at the line of its first bad byte."""
    line = error.object[:error.start].count(b"\n") + 1
    return Problem(str(path), "", line, f"not UTF-8 text: byte {error.object[error.start]:#04x}"
                   " cannot be decoded; save the file as UTF-8")


def _read(path: Path, ext_vars: dict[str, str] | None) -> tuple[str, object, dict[Loc, int] | None]:
    """(text, data, line map) of a spec file; the line map is None when the data came from
    the quick read (then only an invalid spec pays for reading it carefully)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise SpecError([Problem(str(path), "", None, f"cannot read: {error.strerror}")]) from None
    except UnicodeDecodeError as error:
        raise SpecError([_not_utf8(path, error)]) from None
    if path.suffix in (".jsonnet", ".libsonnet"):
        return text, _read_jsonnet(path, ext_vars or {}), {}
    data = _quick_read(text)
    if data is _CAREFUL:
        data, lines = _read_yaml(path, text)
        return text, data, lines
    return text, data, None


def _validate(path: Path, text: str, data: object, lines: dict[Loc, int] | None) -> SpecFile:
    """The whole spec validated at once: every problem, each at its file, line and path."""
    if not isinstance(data, dict):
        raise SpecError([Problem(str(path), "", 1, "a spec is a mapping with 'version' and "
                                                   "'services'")])
    try:
        return SpecFile.model_validate(data)
    except ValidationError as error:
        if lines is None:  # only now: the lines of the careful read, for the messages
            del data
            _, lines = _read_yaml(path, text)
        raise SpecError(_problems(error, str(path), lines)) from None


def load_spec_file(path: str | Path, ext_vars: dict[str, str] | None = None) -> SpecFile:
    """Read and validate a spec; raise :class:`SpecError` listing every problem."""
    path = Path(path)
    return _validate(path, *_read(path, ext_vars))


# --- Service by service: the spec's services never all exist at once ------------------------

Items = Iterator[object]


def _listed(data: dict) -> tuple[dict, Items]:
    """(top-level keys but `services`, the services) of read data, each service's item set
    to None as it is taken, so its data can go once it is resolved."""
    services = data.get("services")
    top = {key: value for key, value in data.items() if key != "services"}

    def items() -> Items:
        if not isinstance(services, list):
            return
        for index, item in enumerate(services):
            services[index] = None
            yield item

    return top, items()


_JSON_SPACE = re.compile(r"[ \t\n\r]*")


# Characters of a spec read at a time while its services are streamed: its whole text is
# never in memory (7.7 MB of JSON for 10,000 services), only a window of it.
_CHUNK = 1 << 16
# A value scanned this close to the end of what is read is scanned again with more text: a
# number cut at the window's end (`1.` of `1.5`) reads as a shorter number.
_MARGIN = 64


class _Window:
    """The text of a spec file read a piece at a time: `text` holds what is read and not
    yet dropped; positions are into it."""

    def __init__(self, file: typing.TextIO) -> None:
        self._file = file
        self.text = ""
        self.eof = False

    def more(self) -> bool:
        """Read on (as much again as is held, so a value larger than a chunk is scanned a
        few times, not once per chunk); False at the end of the file."""
        piece = "" if self.eof else self._file.read(max(_CHUNK, len(self.text)))
        self.eof = not piece
        self.text += piece
        return not self.eof

    def char(self, at: int) -> str:
        """The character at `at` ("" at the end of the file)."""
        while at >= len(self.text) and self.more():
            pass
        return self.text[at:at + 1]

    def space(self, at: int) -> int:
        """Past any JSON white space at `at`."""
        while True:
            at = _JSON_SPACE.match(self.text, at).end()
            if at < len(self.text) or not self.more():
                return at

    def drop(self, at: int) -> int:
        """Forget what is before `at` once it is a chunk or more; `at`'s new position."""
        if at < _CHUNK:
            return at
        self.text = self.text[at:]
        return 0


def _json_services(window: _Window, top: dict) -> Items:
    """The services of a JSON spec, each parsed as it is reached (the other top-level keys
    go into `top`) from a window on its text: parsed by `json`'s own scanner with the quick
    read's options, so each value is what `_quick_read` makes of it. Streamed only when
    `version` and `defaults` come first (what a service is validated with); else the list
    is read whole first. Anything unusual raises _Doubt (then the spec is read the usual
    way)."""
    scan = json.JSONDecoder(object_pairs_hook=_unique_pairs, parse_float=_yaml_float,
                            parse_constant=_not_json).scan_once
    later: list | None = None

    def value(at: int) -> tuple[object, int]:
        while True:
            try:
                found, end = scan(window.text, at)
            except (StopIteration, ValueError):
                if window.more():  # cut at the window's end, or wrong: read on to know
                    continue
                raise _Doubt from None
            if window.eof or len(window.text) - end > _MARGIN or not window.more():
                return found, end

    space = window.space

    def after_member(at: int, close: str) -> int:
        """Past the `,` after a member (not one before `close`), or at `close`."""
        at = space(at)
        if window.char(at) == ",":
            at = space(at + 1)
            if window.char(at) == close:
                raise _Doubt
        elif window.char(at) != close:
            raise _Doubt
        return at

    at = space(0)
    if window.char(at) != "{":
        raise _Doubt
    at = space(at + 1)
    while window.char(at) != "}":
        if window.char(at) != '"':
            raise _Doubt
        key, at = value(at)
        at = space(at)
        if key in top or (later is not None and key == "services") or window.char(at) != ":":
            raise _Doubt
        at = space(at + 1)
        if key == "services" and window.char(at) == "[" and "version" in top \
                and "defaults" in top:
            later = []
            at = space(at + 1)
            while window.char(at) != "]":
                item, at = value(at)
                yield item
                at = window.drop(after_member(at, "]"))
            at += 1
        else:
            top[key], at = value(at)
        at = after_member(at, "}")
    if space(at + 1) != len(window.text):
        raise _Doubt
    if later is None:  # not streamed: the list as read
        yield from _listed({"services": top.pop("services", None)})[1]


def _yaml_services(file: typing.TextIO, top: dict) -> Items:
    """The services of a YAML spec, each built from the parser's events as it is reached
    (see `_stream_read`; the other top-level keys go into `top`), under the same
    conditions as `_json_services`. libyaml reads the file a piece at a time."""
    loader = FastLoader(file)
    later: list | None = None
    try:
        loader.get_event()  # stream start
        if loader.check_event(yaml.StreamEndEvent):
            raise _Doubt
        loader.get_event()  # document start
        start = loader.get_event()
        if type(start) is not yaml.MappingStartEvent or start.anchor is not None \
                or start.tag not in (None, "!") or not start.implicit:
            raise _Doubt
        events = _Events(loader)
        while not loader.check_event(yaml.MappingEndEvent):
            key = events.value()
            if type(key) is not str or key in top or key == "<<" \
                    or (later is not None and key == "services"):
                raise _Doubt
            following = loader.peek_event()
            if key == "services" and type(following) is yaml.SequenceStartEvent \
                    and following.anchor is None and following.tag is None \
                    and "version" in top and "defaults" in top:
                later = []
                loader.get_event()
                while not loader.check_event(yaml.SequenceEndEvent):
                    yield events.value()
                loader.get_event()
            else:
                top[key] = events.value()
        loader.get_event()  # mapping end
        loader.get_event()  # document end
        if not loader.check_event(yaml.StreamEndEvent):
            raise _Doubt
    except yaml.YAMLError:
        raise _Doubt from None
    finally:
        loader.dispose()
    if later is None:
        yield from _listed({"services": top.pop("services", None)})[1]


class ServicesOnDisk(StoredServices):
    """Resolved services pickled to disk one at a time as they are resolved (see
    `spill.Records`), with their names and whether any declares SLOs in memory: a large
    spec's services never all exist at once in the process that reads it. Worker processes
    forked from it read their own range (`services[start:stop]`, one read)."""

    def __init__(self) -> None:
        self._records = Records()
        self.names = Lines()  # on disk too: per service, the parent keeps nothing
        self.any_slos = False

    def append(self, service: Service) -> None:
        self._records.append(service)
        self.names.append(service.name)
        self.any_slos = self.any_slos or bool(service.budget("slos"))

    def __len__(self) -> int:
        return len(self._records)

    @typing.overload
    def __getitem__(self, index: int) -> Service: ...
    @typing.overload
    def __getitem__(self, index: slice) -> list[Service]: ...
    def __getitem__(self, index: int | slice) -> Service | list[Service]:
        if isinstance(index, slice):
            start, stop = index.start or 0, index.stop
            if index.step in (None, 1) and start >= 0 and stop is not None and stop >= 0:
                # as far as sealed, also records added after this process was forked
                return self._records.read(start, stop)
            start, stop, step = index.indices(len(self))
            if step != 1:
                return [self[i] for i in range(start, stop, step)]
            return self._records.read(start, stop)
        position = index + len(self) if index < 0 else index
        if not 0 <= position < len(self):
            raise IndexError("service index out of range")
        return self._records.read(position, position + 1)[0]

    def __iter__(self) -> Iterator[Service]:
        for start in range(0, len(self), _READ_AT_ONCE):
            yield from self._records.read(start, start + _READ_AT_ONCE)

    def seal(self) -> None:
        """No more services: every one is on disk (before worker processes are forked)."""
        self._records.seal()

    def close(self) -> None:
        self._records.close()
        self.names.close()


_READ_AT_ONCE = 64  # services read back at once when iterating stored services
# Profiles kept at most while resolving services that go to disk (forgotten all at once
# past it): a spec whose services each have metrics of their own would otherwise keep
# every one of them here, where the forked worker processes inherit it.
_SHARED_WINDOW = 256


class _PickledAlone(Shared):
    """What services that go to disk share: only their profiles (built once per language
    and metrics). Each service is pickled alone and dropped, so equal budgets, settings and
    labels kept once across services save nothing: without that the bench spec's 1,000
    pickles are byte for byte the same, and its load takes 0.1 s (a fifth) less CPU."""

    def value(self, value: typing.Any) -> typing.Any:
        return value

    def mapping(self, kind: str, mapping: dict) -> dict:
        return mapping

    def profile(self, language: str, metrics: dict[str, str]):
        self._room()
        return super().profile(language, metrics)


def _one_by_one(top: dict, items: Items, store: bool = False) -> Spec | None:
    """A valid spec resolved one service at a time, or None when anything is wrong (see
    `_resolving`); with `store`, its services go to disk as they are resolved."""
    return _finished(_resolving(top, items, ServicesOnDisk() if store else []))


Steps = typing.Generator[None, None, typing.Any]  # one step per service resolved


def _finished(steps: Steps) -> typing.Any:
    """What `steps` returns, every step taken."""
    while True:
        try:
            next(steps)
        except StopIteration as end:
            return end.value


def _resolving(top: dict, items: Items, resolved: ServicesOnDisk | list[Service]) -> Steps:
    """Steps resolving a valid spec one service at a time into `resolved` (a step after
    each), returning the spec, or None when anything is wrong.

    Each service is validated as the only service of a spec with the same top-level keys
    (so every validator of :class:`SpecFile` sees it with the defaults), resolved, and its
    data and input models dropped at once: the data and pydantic models of the whole spec
    (about three times the size of the resolved services) never exist together. The one
    check across services, unique names, keeps only the names. Into `ServicesOnDisk`, each
    resolved service goes to disk at once too. Anything wrong returns None: the caller then
    validates the whole spec at once, which words every problem as it always has. `items`
    may raise _Doubt (the spec is then read the usual way).
    """
    names: set[str] = set()
    store = isinstance(resolved, ServicesOnDisk)
    shared = _PickledAlone(_SHARED_WINDOW) if store else Shared()  # equal parts kept once
    defaults = base = None
    keys: set = set()
    done = False
    try:
        for item in items:
            if base is None:
                base = dict(top)  # the top level as every service is validated with it
                keys = set(top)
            elif defaults is not None:  # validated once; an instance is taken as it is
                base["defaults"] = defaults
            single = SpecFile.model_validate({**base, "services": [item]})
            del item
            defaults, service = single.defaults, single.services[0]
            if service.name in names:
                return None
            names.add(service.name)
            resolved.append(resolve_service(service, defaults, shared))
            yield
        if base is None or set(top) != keys:  # no services; keys after the services
            return None
        done = True
    except ValidationError:
        return None
    finally:
        if not done and isinstance(resolved, ServicesOnDisk):
            resolved.close()
    if isinstance(resolved, ServicesOnDisk):
        resolved.seal()
        return Spec(services=resolved, alertmanager=routing(defaults))
    return Spec(services=tuple(resolved), alertmanager=routing(defaults))


def _streamed(path: Path, store: bool = False) -> Spec | type[_Doubt] | None:
    """The spec read and resolved service by service as the text is parsed (see
    `_streaming`)."""
    return _finished(_streaming(path, ServicesOnDisk() if store else []))


def _streaming(path: Path, resolved: ServicesOnDisk | list[Service]) -> Steps:
    """Steps reading the spec and resolving it into `resolved` service by service as the
    text is parsed, a piece of the file at a time, returning the spec; None when it is not
    valid, _Doubt when this read is unsure (the usual read decides)."""
    try:
        with path.open(encoding="utf-8") as file:
            top: dict = {}
            window = _Window(file)
            if window.char(window.space(0)) == "{":
                items = _json_services(window, top)
            else:
                del window
                file.seek(0)
                items = _yaml_services(file, top)
            return (yield from _resolving(top, items, resolved))
    except (OSError, UnicodeDecodeError, _Doubt):
        if isinstance(resolved, ServicesOnDisk):
            resolved.close()
        return _Doubt  # the usual read words it


def _jsonnet(path: Path) -> bool:
    return path.suffix in (".jsonnet", ".libsonnet")


def load_spec(path: str | Path, ext_vars: dict[str, str] | None = None, *,
              store: bool = False) -> Spec:
    """Read, validate and resolve a spec into what builders consume.

    A valid spec is validated and resolved service by service as it is parsed (see
    `_resolving`), so memory holds its resolved services, not its data and input models
    too; with `store`, not even those: they go to disk as they are resolved (the spec's
    `services` are then `ServicesOnDisk`, read back when needed). Any problem sends it to
    the whole-spec validation (`load_spec_file`, read again), whose messages name every
    problem's file, line and spec path.
    """
    path = Path(path)
    spec = _Doubt if _jsonnet(path) else _streamed(path, store)
    return spec if isinstance(spec, Spec) else _read_again(path, ext_vars, spec, store)


def _read_again(path: Path, ext_vars: dict[str, str] | None, streamed: object,
                store: bool) -> Spec:
    """The spec, read the usual way after the streamed read gave `streamed` (None: not
    valid; _Doubt: unusual text such as merge keys or keys after the services, or
    Jsonnet); raises SpecError naming every problem."""
    if streamed is _Doubt:
        data = _read(path, ext_vars)[1]  # the text and lines go: a problem reads again
        if isinstance(data, dict) and (spec := _one_by_one(*_listed(data), store)) is not None:
            return spec
        del data
    return resolve(_validate(path, *_read(path, ext_vars)))


class Loading:
    """A spec being read, validated and resolved service by service into `services` (on
    disk), only as far as asked: `generate` starts its worker processes on the first
    services while this process reads the rest (the read is a third of a cold run's serial
    time). `spec()` is what `load_spec(path, store=True)` returns: the same services when
    the streamed read ends well, else (unusual text, a problem) what the usual read makes
    of the file, or its SpecError."""

    def __init__(self, path: str | Path, ext_vars: dict[str, str] | None = None) -> None:
        self.path, self._ext_vars = Path(path), ext_vars
        self.services = ServicesOnDisk()
        self._steps: Steps | None = None if _jsonnet(self.path) else _streaming(
            self.path, self.services)
        self._streamed: object = _Doubt  # what the streamed read returned once it ended
        self._spec: Spec | None = None

    def more(self, count: int) -> bool:
        """Whether `count` services (at least) are resolved and on disk for processes
        forked at any time (reading on until they are); False once the streamed read has
        ended with fewer, or has given up (`spec()` then decides)."""
        while self._steps is not None and len(self.services) < count:
            try:
                next(self._steps)
            except StopIteration as end:
                self._steps, self._streamed = None, end.value
        if not isinstance(self._streamed, Spec) and self._steps is None:
            return False
        self.services.seal()
        return len(self.services) >= count

    def spec(self) -> Spec:
        """The whole spec (read to its end first); raises SpecError naming every problem."""
        if self._spec is None:
            if self._steps is not None:
                self._streamed = _finished(self._steps)
                self._steps = None
            streamed = self._streamed
            self._spec = streamed if isinstance(streamed, Spec) else _read_again(
                self.path, self._ext_vars, streamed, store=True)
            if self._spec.services is not self.services:
                self.services.close()  # read again: these are not the spec's
        return self._spec

    def close(self) -> None:
        """Stop reading (a problem elsewhere): the services on disk go."""
        if self._steps is not None:
            self._steps.close()
            self._steps = None
        self.services.close()


def load_services(path: str | Path,
                  ext_vars: dict[str, str] | None = None) -> tuple[Service, ...]:
    """The resolved services of a spec (see :func:`load_spec`)."""
    return load_spec(path, ext_vars).services
