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
