"""A valid spec is read without line numbers (`load._quick_read`), an invalid one carefully:
the data is the same either way, and every message keeps its file, line and spec path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from watchkeeper import load
from watchkeeper.load import SpecError, load_spec_file

SPEC = {"version": 1,
        "defaults": {"labels": {"team": "platform"}, "for": "2m",
                     "alertmanager": {"receivers": "none"}},
        "services": [{"name": "checkout", "selector": {"job": "checkout"}, "language": "go",
                      "http": {"latency": {"p99": {"warning": "200ms", "critical": "1s"}}}}]}


def problems(path) -> list[str]:
    with pytest.raises(SpecError) as caught:
        load_spec_file(path)
    return [f"{p.line}:{p.path}: {p.message}" for p in caught.value.problems]


@pytest.mark.parametrize("text", [
    json.dumps(SPEC, indent=2), json.dumps(SPEC), yaml.safe_dump(SPEC),
    '{"a": 1.5, "b": 1e3, "c": 1.0e+3, "d": -0.5, "e": 10, "f": "yes", "g": [true, null]}',
    "a: &x {b: 1}\nc: *x\ne: 2001-12-14\nf: 0x1F\ng: [&y 1, *y, ~, yes, Off, .inf, 1_000]\n",
    "- !!str 5\n- !!int '7'\n- |\n  block\n- >\n  folded\n  text\n", "", "# only a comment\n",
    "plain scalar\n", "{a: 1}\n",
])
def test_quick_read_is_what_yaml_reads(text):
    assert load._quick_read(text) == yaml.safe_load(text)


def test_quick_read_past_the_held_plain_scalars_is_what_yaml_reads(monkeypatch):
    """More distinct plain scalars than `_Events` holds (it starts over): every one still
    read as PyYAML reads it, repeated ones before and after the clearing too."""
    monkeypatch.setattr(load, "_PLAIN_HELD", 8)
    text = "".join(f"k{i}: [v{i}, {i}, {i}.5, yes, 2001-12-14, v{i % 3}]\n" for i in range(40))
    assert load._quick_read(text) == yaml.safe_load(text)


@pytest.mark.parametrize("text", [
    '{"a": 1, "a": 2}', '{"a": NaN}', '{"a": Infinity}', "a: 1\na: 2\n",
    "[1, 2", "{[1]: 2}", "a: &x {b: 1}\nc: {<<: *x, d: 2}\n", "a: !!set {x}\n",
    "a: *nowhere\n", "---\na: 1\n---\nb: 2\n", "? [1]\n: 2\n",
])
def test_doubtful_text_goes_to_the_careful_read(text):
    assert load._quick_read(text) is load._CAREFUL


keys = st.text(alphabet="abcxyz_<-: ", min_size=1, max_size=4)
scalars = st.one_of(st.text(max_size=8), st.integers(), st.booleans(), st.none(),
                    st.floats(allow_nan=False), st.sampled_from(["yes", "1e3", "0x1F", "~"]))
documents = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(keys, inner, max_size=3)), max_leaves=12)


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(documents, st.booleans())
def test_quick_read_of_any_dumped_document_is_what_yaml_reads(document, flow):
    shared = {"doc": document, "again": document}  # aliases when the document is a collection
    text = yaml.safe_dump(shared, default_flow_style=flow)
    quick = load._quick_read(text)
    assert quick is load._CAREFUL or quick == yaml.safe_load(text)
    if "<<" not in text:
        assert quick == yaml.safe_load(text)


def test_json_spec_problems_name_their_lines(tmp_path):
    spec = json.loads(json.dumps(SPEC))
    spec["services"][0]["http"]["latency"]["p99"]["critcal"] = "2s"
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec, indent=2))
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "critcal" in text)
    assert problems(path) == [
        f"{line}:services[0].http.latency.p99.critcal: unknown key 'critcal'; "
        "did you mean 'critical'?"]


def test_json_spec_key_written_twice_is_named_with_its_line(tmp_path):
    text = json.dumps(SPEC, indent=2).replace('"for": "2m",', '"for": "2m",\n    "for": "3m",')
    path = tmp_path / "spec.json"
    path.write_text(text)
    line = text.splitlines().index('    "for": "3m",') + 1
    assert problems(path) == [f"{line}:defaults.for: key written twice; keep one"]


def test_valid_spec_never_takes_the_careful_read(tmp_path, monkeypatch):
    def careful(*args):
        raise AssertionError("the careful read ran for a valid spec")

    monkeypatch.setattr(load, "_read_yaml", careful)
    for name, text in (("spec.yaml", yaml.safe_dump(SPEC)), ("spec.json", json.dumps(SPEC))):
        (tmp_path / name).write_text(text)
        assert load_spec_file(tmp_path / name).services[0].name == "checkout"


# --- Service by service (load_spec) ------------------------------------------------------------

def _spec_of(services: list[dict], **top) -> dict:
    return {"version": 1, "defaults": SPEC["defaults"], **top, "services": services}


def _service(name: str, **keys) -> dict:
    return {**SPEC["services"][0], "name": name, "selector": {"job": name}, **keys}


def test_service_by_service_resolves_what_the_whole_spec_resolves(tmp_path):
    from watchkeeper.spec import resolve

    path = Path(__file__).resolve().parents[2] / "spec" / "services.yaml"
    assert load.load_spec(path) == resolve(load_spec_file(path))
    document = _spec_of([_service("a"), _service("b", **{"for": "7m"}), _service("c")])
    for name, text in (("s.json", json.dumps(document)), ("s.yaml", yaml.safe_dump(document))):
        (tmp_path / name).write_text(text)
        assert load.load_spec(tmp_path / name) == resolve(load_spec_file(tmp_path / name))


@pytest.mark.parametrize("document", [
    _spec_of([_service("a"), _service("b"), _service("a")]),          # across services
    _spec_of([_service("a"), _service("b", langauge="go")]),          # a later service
    _spec_of([_service("a")], extra=1),                               # the top level
    _spec_of([]),                                                     # no services
    {"version": 1, "services": [_service("a")]},                      # no defaults
])
def test_service_by_service_words_problems_as_the_whole_spec_does(tmp_path, document):
    """Any problem found one service at a time is reported by the whole-spec validation:
    the same messages, lines and paths as `load_spec_file` gives."""
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(document, indent=2))
    with pytest.raises(SpecError) as whole:
        load_spec_file(path)
    with pytest.raises(SpecError) as one_by_one:
        load.load_spec(path)
    assert one_by_one.value.problems == whole.value.problems
    assert whole.value.problems


def test_spec_validators_are_known_to_the_service_by_service_read():
    """`load._one_by_one` runs SpecFile's validators on one service at a time; a validator
    that looks across services (like unique names) needs its own check there too."""
    from watchkeeper.spec import SpecFile

    decorators = SpecFile.__pydantic_decorators__
    per_service = {"_presets_and_units", "_slos_fit_prometheus"}
    across_services = {"_unique_service_names"}  # load._one_by_one keeps the names
    assert set(decorators.model_validators) == per_service
    assert set(decorators.field_validators) == across_services


def test_valid_spec_is_never_validated_whole(tmp_path, monkeypatch):
    def whole(*args):
        raise AssertionError("a valid spec was validated whole")

    monkeypatch.setattr(load, "_validate", whole)
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(_spec_of([_service("a"), _service("b")])))
    assert [s.name for s in load.load_spec(path).services] == ["a", "b"]


def test_services_share_their_equal_parts(tmp_path):
    """Equal profiles, settings, labels and budgets are held once for the whole spec (the
    memory of a large spec is then mostly names and selectors); different ones are not."""
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(_spec_of([_service("a"), _service("b"),
                                         _service("c", labels={"tier": "1"})])))
    a, b, c = load.load_spec(path).services
    assert a.budgets is b.budgets and a.profile is b.profile and a.labels is b.labels
    assert a.settings is b.settings and c.budgets is a.budgets
    assert c.labels == {"team": "platform", "tier": "1"} and a.labels == {"team": "platform"}


def test_shared_parts_are_the_same_in_every_way():
    from watchkeeper.spec import Shared

    shared = Shared()
    assert shared.value(1.0) == 1.0 and type(shared.value(1)) is int  # 1 == 1.0, not shared
    assert shared.value((True,))[0] is True and shared.value((1,))[0] is not True
    first = shared.mapping("labels", {"a": "1", "b": "2"})
    assert shared.mapping("labels", {"a": "1", "b": "2"}) is first
    assert list(shared.mapping("labels", {"b": "2", "a": "1"})) == ["b", "a"]
    assert shared.mapping("x", {"a": [1]}) is not shared.mapping("x", {"a": [1]})


def _texts(document: dict) -> list[str]:
    return [json.dumps(document), json.dumps(document, indent=2), yaml.safe_dump(document),
            yaml.safe_dump(document, sort_keys=False), yaml.safe_dump(document,
                                                                     default_flow_style=True)]


_TWO = [_service("a"), _service("b", **{"for": "7m"})]


@pytest.mark.parametrize("document", [
    _spec_of(_TWO),                                                  # version, defaults first
    {"services": _TWO, "version": 1, "defaults": SPEC["defaults"]},  # services first
    {"version": 1, "services": _TWO, "defaults": SPEC["defaults"]},  # defaults after them
    {"version": 1, "defaults": SPEC["defaults"], "services": _TWO, "zzz": 1},  # a key after
    {"version": 1, "defaults": SPEC["defaults"], "services": [_TWO[0], _TWO[0]]},
    {"version": 1, "defaults": SPEC["defaults"], "services": []},
    {"version": 1, "defaults": SPEC["defaults"], "services": {"a": 1}},
    {"version": 1, "defaults": SPEC["defaults"]},
])
def test_streamed_read_ends_as_the_whole_read(tmp_path, document):
    """Whatever the order of the top-level keys and whatever is wrong: the spec the services
    are streamed from resolves to what the whole read resolves to, or has its problems."""
    from watchkeeper.spec import resolve

    for index, text in enumerate(_texts(document)):
        path = tmp_path / f"spec{index}.{'json' if text.startswith('{') else 'yaml'}"
        path.write_text(text)
        try:
            expected = resolve(load_spec_file(path))
        except SpecError as error:
            with pytest.raises(SpecError) as caught:
                load.load_spec(path)
            assert caught.value.problems == error.problems
        else:
            assert load.load_spec(path) == expected


@pytest.mark.parametrize("document", [
    _spec_of(_TWO), _spec_of([_service(f"s{i}") for i in range(5)]),
    {"services": _TWO, "version": 1, "defaults": SPEC["defaults"]},
])
def test_streamed_read_in_tiny_pieces_is_the_whole_read(tmp_path, monkeypatch, document):
    """The services are streamed from a window on the file, not its whole text: read a
    few characters at a time, the spec resolves to what the whole read resolves to."""
    from watchkeeper.spec import resolve

    monkeypatch.setattr(load, "_CHUNK", 3)
    for index, text in enumerate(_texts(document)):
        path = tmp_path / f"spec{index}.{'json' if text.startswith('{') else 'yaml'}"
        path.write_text(text)
        assert load.load_spec(path) == resolve(load_spec_file(path))


class _Cut:
    """A file whose first read ends at `cut` (whatever size is asked), the rest after."""

    def __init__(self, text: str, cut: int) -> None:
        self.pieces = [text[:cut], text[cut:]]

    def read(self, size: int) -> str:
        return self.pieces.pop(0) if self.pieces else ""


def test_values_cut_anywhere_by_the_window_read_as_whole():
    """Wherever the window's end falls (in a number, a string, a key, white space), each
    service and top-level value is what the quick read of the whole text makes of it: a
    number cut at `1.` of `1.5` or `1e` of `1e3` is read again with more text."""
    document = ('{"version": 12, "defaults": {"a": 1.5, "b": 1e3, "c": -0.25, "d": 1.0e+3},'
                ' "services" : [ {"n": 2.75, "s": "x\\"y"}, 125 , {"m": [1e-2, true, null]} ],'
                ' "zzz": 3.5 }\n')
    whole = load._quick_read(document)
    for cut in range(1, len(document) + 1):
        top: dict = {}
        items = list(load._json_services(load._Window(_Cut(document, cut)), top))
        assert {**top, "services": items} == whole, cut


@pytest.mark.parametrize("text", [
    '{"version": 1, "version": 1, "services": []}', '{"version": 1} x', '{"a": 1,}',
    "version: 1\nversion: 2\n", "<<: {version: 1}\nservices: []\n", "- 1\n", "",
    yaml.safe_dump(_spec_of(_TWO), sort_keys=False) + "---\nb: 1\n",
])
def test_unusual_text_is_not_streamed(tmp_path, text):
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    assert load._streamed(path) is load._Doubt


def test_valid_spec_is_streamed_service_by_service(tmp_path, monkeypatch):
    """Each service is resolved before the next one is parsed: a text broken after two
    services has those two resolved before the break is even read."""
    document = _spec_of([_service(f"s{i}") for i in range(3)])
    seen: list[str] = []
    original = load.resolve_service

    def resolve_service(service, defaults, shared):
        seen.append(service.name)
        return original(service, defaults, shared)

    monkeypatch.setattr(load, "resolve_service", resolve_service)
    whole = json.dumps(document)
    broken = {"s.json": whole[:whole.rindex('{"name"')] + '{"name": [',
              "s.yaml": yaml.safe_dump(document, sort_keys=False) + "- {name: [\n"}
    for name, text in broken.items():
        seen.clear()
        (tmp_path / name).write_text(text)
        assert load._streamed(tmp_path / name) is load._Doubt
        assert seen == ["s0", "s1"] if name.endswith("json") else ["s0", "s1", "s2"], name


def test_services_kept_on_disk_read_back_as_resolved_in_memory(tmp_path, monkeypatch):
    """`load_spec(store=True)`: every service pickled to disk as it is resolved, read back
    equal (same repr: the build cache keys on it) by index, slice or iteration, in any
    process; names and "any SLO" known without reading any back; a small window of shared
    parts changes nothing."""
    from watchkeeper.model import any_slos, service_names

    path = Path(__file__).resolve().parents[2] / "spec" / "services.yaml"
    monkeypatch.setattr(load, "_SHARED_WINDOW", 3)
    for spec_path in (path, tmp_path / "s.json"):
        if spec_path.suffix == ".json":
            spec_path.write_text(json.dumps(_spec_of([_service(n) for n in "abcdefg"])))
        memory, stored = load.load_spec(spec_path), load.load_spec(spec_path, store=True)
        assert isinstance(stored.services, load.ServicesOnDisk)
        assert tuple(stored.services) == memory.services
        assert repr(list(stored.services)) == repr(list(memory.services))
        assert stored.alertmanager == memory.alertmanager
        count = len(memory.services)
        assert len(stored.services) == count
        assert stored.services[1:count - 1] == list(memory.services[1:count - 1])
        assert stored.services[::2] == list(memory.services[::2])
        assert stored.services[-1] == memory.services[-1] and stored.services[5:2] == []
        with pytest.raises(IndexError):
            stored.services[count]
        assert list(service_names(stored.services)) == [s.name for s in memory.services]
        assert any_slos(stored.services) == any_slos(memory.services)
    assert any_slos(load.load_spec(path, store=True).services)  # the example declares SLOs
    assert not any_slos(load.load_spec(tmp_path / "s.json", store=True).services)


def test_a_problem_found_while_storing_is_worded_as_before(tmp_path):
    document = _spec_of([_service("a"), _service("b", langauge="go"), _service("a")])
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(document, indent=1))
    with pytest.raises(SpecError) as stored:
        load.load_spec(path, store=True)
    assert [f"{p.line}:{p.path}: {p.message}" for p in stored.value.problems] == problems(path)
    misspelt = next(number for number, line in enumerate(path.read_text().splitlines(), 1)
                    if '"langauge"' in line)
    assert [p.line for p in stored.value.problems] == [misspelt]


def test_spec_not_in_utf8_is_one_problem_at_its_line(tmp_path):
    """A spec saved in another encoding: one problem naming the file and the line of the
    first byte that is not UTF-8 (not a traceback), by either read."""
    path = tmp_path / "spec.yaml"
    path.write_bytes(b"version: 1\nservices:\n- name: caf\xe9\n")
    for read in (load.load_spec, load_spec_file):
        with pytest.raises(SpecError) as caught:
            read(path)
        [problem] = caught.value.problems
        assert (problem.file, problem.line) == (str(path), 3)
        assert "not UTF-8" in problem.message and "0xe9" in problem.message
