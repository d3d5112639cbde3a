"""The YAML emitter writes what PyYAML reads back identically, and swaps folders atomically."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from watchkeeper.writers import OwnershipError, Stage, commit, digest, to_yaml, write_tree

TRICKY = ["", "0s", "+Inf", "1e-06", "y", "no", "null", "~", "a: b", "a #b", "-x", "? x",
          "{x}", "[x]", "x{a=\"b\"}", "'q'", "it's", "tab\there", "trailing ", "x:",
          "{{ $value | humanize }}", "%x", "@x", "`x`", "multi\nline", "multi\nline\n",
          "0x1F", "1_000", "5m", "1h30m", "10", "1:30", "2001-12-14", "1e3",
          ".5", "é", "*x", "&x", "!x", "|x", ">x", "#x",
          "inf", "Infinity", "nan", "NaN", ".inf", "-.inf", "_1", "i_nf", "on", "OFF", "Yes",
          "{{ $value }}", "{{ $labels.instance }} is down", "say \"hi\"", "back\\slash",
          "line\u2028sep", "bell\x07", "\U0001f525 fire", "→ arrow", "a\r\nb", " lead",
          "- dash", "? q", ": colon", "x: y", "100%", "1.0", "-1", "+1", "0o17", "0b1"]

keys = st.text(alphabet="abcdefgh_", min_size=1, max_size=6)
scalars = st.one_of(st.sampled_from(TRICKY), st.text(max_size=12), st.integers(),
                    st.floats(allow_nan=False, allow_infinity=False), st.booleans())
documents = st.recursive(
    st.dictionaries(keys, scalars, max_size=4),
    lambda inner: st.dictionaries(keys, st.one_of(scalars, inner, st.lists(inner, max_size=3),
                                                  st.lists(scalars, max_size=3)), max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(documents)
def test_emitted_yaml_reads_back_identically(document):
    assert yaml.safe_load(to_yaml(document)) == (document or None)


def test_tricky_strings_round_trip():
    document = {"values": TRICKY}
    assert yaml.safe_load(to_yaml(document)) == document


def test_write_tree_keeps_foreign_files_and_removes_its_own_stale_ones(tmp_path):
    (tmp_path / "alerts").mkdir()
    (tmp_path / "alerts" / "mine.yml").write_text("old")
    (tmp_path / "keep.txt").write_text("mine")
    write_tree(tmp_path, {"alerts/a.yml": "a: 1\n", "alerts/tests/b.yml": "b: 2\n"}, ("alerts",))
    assert sorted(p.name for p in (tmp_path / "alerts").rglob("*.yml")) == [
        "a.yml", "b.yml", "mine.yml"]
    write_tree(tmp_path, {"alerts/a.yml": "a: 2\n"}, ("alerts",))
    assert sorted(p.name for p in (tmp_path / "alerts").rglob("*.yml")) == ["a.yml", "mine.yml"]
    assert not (tmp_path / "alerts" / "tests").exists()  # emptied by its last owned file
    assert (tmp_path / "alerts" / "mine.yml").read_text() == "old"
    assert (tmp_path / "keep.txt").read_text() == "mine"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert [p.name for p in (tmp_path / "alerts").iterdir() if p.name.startswith(".")] == [
        ".watchkeeper-manifest"]


def test_unchanged_files_are_left_in_place_and_changed_ones_replaced(tmp_path):
    files = {"alerts/a.yml": "a: 1\n", "alerts/tests/b.yml": "b: 2\n"}
    write_tree(tmp_path, files, ("alerts",))
    before = {name: (tmp_path / name).stat().st_ino for name in files}
    write_tree(tmp_path, {**files, "alerts/tests/b.yml": "b: 3\n"}, ("alerts",))
    assert (tmp_path / "alerts/a.yml").stat().st_ino == before["alerts/a.yml"]  # not rewritten
    assert (tmp_path / "alerts/tests/b.yml").read_text() == "b: 3\n"
    manifest = (tmp_path / "alerts" / ".watchkeeper-manifest").read_text()
    assert digest(b"a: 1\n") in manifest and digest(b"b: 3\n") in manifest
    assert digest(b"b: 2\n") not in manifest


def test_a_link_to_identical_bytes_is_not_taken_for_the_generated_file(tmp_path):
    write_tree(tmp_path, {"alerts/a.yml": "a: 1\n"}, ("alerts",))
    (tmp_path / "elsewhere.yml").write_text("a: 1\n")
    (tmp_path / "alerts/a.yml").unlink()
    (tmp_path / "alerts/a.yml").symlink_to(tmp_path / "elsewhere.yml")
    with pytest.raises(OwnershipError):
        write_tree(tmp_path, {"alerts/a.yml": "a: 1\n"}, ("alerts",))
    assert (tmp_path / "alerts/a.yml").is_symlink()


def test_streamed_file_pieces_are_written_whole(tmp_path):
    stage = Stage.create(tmp_path, ("dashboards",))
    try:
        written = {"dashboards/o.json": stage.put("dashboards/o.json", iter(["{", "}\n"]))}
        commit(stage, written)
    finally:
        stage.discard()
    assert (tmp_path / "dashboards/o.json").read_text() == "{}\n"
    assert written["dashboards/o.json"] == digest(b"{}\n")


@pytest.mark.parametrize("existing", [True, False], ids=["staged-inside", "staged-beside"])
@pytest.mark.parametrize("pieces", [False, True], ids=["whole", "in-pieces"])
def test_a_file_put_after_the_stage_was_discarded_fails_and_makes_no_folder(
        tmp_path, existing, pieces):
    """An interrupted run removes its staging folders while a worker may still be writing:
    that worker's next file must fail, not make the staging folder again (it would be left
    behind, the bug a Ctrl-C in CI once showed)."""
    if existing:
        (tmp_path / "alerts").mkdir()
    stage = Stage.create(tmp_path, ("alerts",))
    stage.put("alerts/tests/first.yml", "a: 1\n")  # a subfolder made while staged: fine
    stage.discard()
    with pytest.raises(FileNotFoundError):
        stage.put("alerts/tests/late.yml", iter(["b: 2\n"]) if pieces else "b: 2\n")
    assert [str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")] == ["alerts"]


def test_a_new_output_folder_is_moved_into_place_whole(tmp_path, monkeypatch):
    """A first run stages beside the folder and moves it with one rename: no per-file
    renames, files world-readable whatever the umask, nothing left behind."""
    import os

    from watchkeeper import writers

    replaced = []
    monkeypatch.setattr(writers.os, "replace",
                        lambda s, t, real=os.replace: (replaced.append(t), real(s, t)))
    files = {"alerts/a.yml": "a: 1\n", "alerts/tests/b.yml": "b: 2\n"}
    old_umask = os.umask(0o077)
    try:
        write_tree(tmp_path, files, ("alerts",))
    finally:
        os.umask(old_umask)
    assert [t for t in replaced if not str(t).endswith(".watchkeeper-manifest")] == []
    for name, text in files.items():
        assert (tmp_path / name).read_text() == text
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alerts"]
    assert (tmp_path / "alerts" / ".watchkeeper-manifest").read_text() == "".join(
        f"{digest(text.encode())}  {name.removeprefix('alerts/')}\n"
        for name, text in sorted(files.items()))


def test_a_file_put_into_a_new_folder_during_the_run_is_kept(tmp_path):
    """Someone writes into the folder a first run made while it renders: the folder is not
    replaced; the generated files move in one by one and the foreign one stays."""
    stage = Stage.create(tmp_path, ("alerts",))
    try:
        written = {"alerts/a.yml": stage.put("alerts/a.yml", "a: 1\n")}
        (tmp_path / "alerts" / "mine.txt").write_text("mine")
        commit(stage, written)
    finally:
        stage.discard()
    assert (tmp_path / "alerts" / "mine.txt").read_text() == "mine"
    assert (tmp_path / "alerts" / "a.yml").read_text() == "a: 1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alerts"]


def test_a_foreign_file_put_where_output_goes_during_a_first_run_is_refused(tmp_path):
    stage = Stage.create(tmp_path, ("alerts",))
    try:
        written = {"alerts/a.yml": stage.put("alerts/a.yml", "a: 1\n")}
        (tmp_path / "alerts" / "a.yml").write_text("mine")
        with pytest.raises(OwnershipError):
            commit(stage, written)
    finally:
        stage.discard()
    assert (tmp_path / "alerts" / "a.yml").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alerts"]


texts = st.one_of(st.sampled_from(TRICKY), st.text(max_size=12))
labels = st.dictionaries(keys, texts, max_size=3)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=texts, selector=texts, values=texts, alert=texts, expected=st.lists(
    st.tuples(labels, labels), max_size=2), expr=texts, sample=labels)
def test_test_files_written_directly_read_back_as_their_scenarios(name, selector, values,
                                                                 alert, expected, expr, sample):
    """Test files are written line by line (no document for `to_yaml`): every string still
    reads back as itself, at every depth, empty lists and mappings included."""
    from watchkeeper.model import AlertCheck, ExpectedAlert, ExprCheck, Piece, Scenario, Series
    from watchkeeper.promql import matchers
    from watchkeeper.rule_tests import test_file

    scenario = Scenario(name, (Series(selector, values),), (AlertCheck(
        60.0, alert, tuple(ExpectedAlert(lab, ann) for lab, ann in expected)),),
        (ExprCheck(120.0, expr, ((sample, 0.25),)),))
    piece = Piece("g", scenarios=[scenario], test_step=60.0)
    text = test_file(None, [piece], [name, "r.yml"], header="# head\n")  # type: ignore[arg-type]
    assert text.startswith("# head\n")
    assert yaml.safe_load(text) == {
        "rule_files": [name, "r.yml"], "evaluation_interval": "1m",
        "tests": [{"name": name, "interval": "1m",
                   "input_series": [{"series": selector, "values": values}],
                   "alert_rule_test": [{"eval_time": "1m", "alertname": alert, "exp_alerts": [
                       {"exp_labels": lab, "exp_annotations": ann} for lab, ann in expected]}],
                   "promql_expr_test": [{"expr": f"round({expr}, 1e-06)", "eval_time": "2m",
                                         "exp_samples": [{"labels": matchers(dict(sorted(
                                             sample.items()))), "value": 0.25}]}]}]}


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(record=texts, expr=texts, labels_=labels, annotations=labels, name=texts)
def test_rule_files_written_directly_read_back_as_their_rules(record, expr, labels_,
                                                             annotations, name):
    """Rule files are written line by line too: same reading as the rules, at every depth."""
    from watchkeeper.model import Alert, Piece, Recording
    from watchkeeper.rules import rule_file

    piece = Piece(name, recordings=[Recording(record, expr, labels_)],
                  alerts=[Alert(name, expr, 300.0, labels_, annotations, 60.0),
                          Alert(name, expr, 0.0, {}, annotations)])
    assert yaml.safe_load(rule_file([piece, Piece("empty")])) == {"groups": [
        {"name": name, "rules": [
            {"record": record, "expr": expr, **({"labels": labels_} if labels_ else {})},
            {"alert": name, "expr": expr, "for": "5m", "keep_firing_for": "1m",
             "labels": labels_, "annotations": annotations},
            {"alert": name, "expr": expr, "labels": {}, "annotations": annotations}]},
        {"name": "empty", "rules": []}]}
