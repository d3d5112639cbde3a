"""The YAML emitter writes what PyYAML reads back identically, and swaps folders atomically."""

from __future__ import annotations

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from watchkeeper.writers import to_yaml, write_tree

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
