"""`watchkeeper test` on every core and with remembered passes: what re-runs and what not.

Real promtool throughout; a small two-service spec keeps each run short.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rule_helpers import generate_alerts, group_test_file, group_test_files, load_yaml, write_spec
from watchkeeper import promtool

WATCHKEEPER = [sys.executable, "-m", "watchkeeper.cli"]


def service(name: str, warning: str = "512MiB") -> dict:
    return {"name": name, "selector": {"job": name}, "language": "go",
            "runtime": {"memory": {"warning": warning, "critical": "2GiB"},
                        "goroutines": {"warning": 5000, "critical": 10000,
                                       "leak": {"window": "1h", "horizon": "4h"}}}}


@pytest.fixture
def out(tmp_path: Path) -> Path:
    spec = write_spec(tmp_path, {"version": 1, "services": [service("one"), service("two")]})
    generate_alerts(spec, tmp_path / "out")
    return tmp_path / "out"


def wk_test(folder: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*WATCHKEEPER, "test", str(folder), *args], capture_output=True,
                          text=True, env=env, check=False)


def statuses(result: subprocess.CompletedProcess) -> dict[str, str]:
    """File name → 'ok', 'cached' or 'FAIL', from the per-file lines."""
    found = {}
    for line in result.stdout.splitlines():
        if line.startswith(("ok   ", "FAIL ")):
            name = Path(line.split(": ", 1)[1].removesuffix(" (cached)")).name
            found[name] = "cached" if line.endswith("(cached)") else line.split()[0]
    return found


def test_second_run_reuses_passes_and_one_changed_service_re_runs_alone(out):
    first = wk_test(out)
    assert first.returncode == 0, first.stdout
    assert set(statuses(first).values()) == {"ok"}
    second = wk_test(out)
    assert second.returncode == 0
    assert set(statuses(second).values()) == {"cached"}
    # Per service: runtime, leak and availability rule files, and their test files.
    files = len(list(out.rglob("*.rules.yml"))) + len(list(out.rglob("*.test.yml")))
    assert f"promtool: {files} passed, 0 failed ({files} unchanged" in second.stdout

    spec = write_spec(out.parent, {"version": 1,
                                   "services": [service("one", "600MiB"), service("two")]})
    generate_alerts(spec, out)
    third = wk_test(out)
    assert third.returncode == 0, third.stdout
    # The leak's climb and flat cases check the static budget too: their file lists the
    # runtime rules (the sawtooth's does not).
    changed = {"one.runtime.rules.yml", group_test_file(out / "alerts", "one", "runtime").name,
               "one.leak.with-runtime.test.yml"}
    assert {name for name, status in statuses(third).items() if status == "ok"} == changed
    assert set(statuses(third).values()) == {"ok", "cached"}


def test_a_rule_change_re_runs_the_tests_that_load_it(out):
    assert wk_test(out).returncode == 0
    rules = out / "alerts" / "two.runtime.rules.yml"
    rules.write_text(rules.read_text() + "# edited by hand\n")
    again = wk_test(out)
    # The leak tests list the runtime rules too (they check the static budget as well).
    assert {name for name, status in statuses(again).items() if status == "ok"} == {
        "two.runtime.rules.yml", group_test_file(out / "alerts", "two", "runtime").name,
        "two.leak.with-runtime.test.yml"}
    assert len(statuses(again)) == len(list(out.rglob("*.rules.yml"))) + \
        len(list(out.rglob("*.test.yml")))


def test_a_test_file_listing_another_rule_file_follows_its_new_list(out):
    """What a test file lists is remembered by the test file's own bytes: once its
    `rule_files` are edited, a change to a newly listed file re-runs it."""
    assert wk_test(out).returncode == 0
    test = group_test_file(out / "alerts", "two", "runtime")
    text = test.read_text()
    assert "rule_files:\n" in text
    test.write_text(text.replace("rule_files:\n", "rule_files:\n- ../one.leak.rules.yml\n", 1))
    assert statuses(wk_test(out))[test.name] == "ok"
    assert statuses(wk_test(out))[test.name] == "cached"
    rules = out / "alerts" / "one.leak.rules.yml"
    rules.write_text(rules.read_text() + "# edited by hand\n")
    assert statuses(wk_test(out))[test.name] == "ok"


def test_failures_are_never_remembered_and_all_forces_a_full_run(out):
    rules = out / "alerts" / "one.runtime.rules.yml"
    text = rules.read_text()
    assert "> 536870912" in text
    rules.write_text(text.replace("> 536870912", "> 1073741824", 1))
    for _ in range(2):
        failed = wk_test(out)
        assert failed.returncode == 1
        one, two = (group_test_file(out / "alerts", name, "runtime").name
                    for name in ("one", "two"))
        assert statuses(failed)[one] == "FAIL"
        assert statuses(failed)[two] in ("ok", "cached")
    full = wk_test(out, "--all")
    assert "cached" not in statuses(full).values()
    assert full.returncode == 1


def test_another_promtool_version_re_runs_everything(out, tmp_path):
    assert wk_test(out).returncode == 0
    # The real promtool behind a wrapper that reports another version.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "promtool"
    wrapper.write_text(f'#!/bin/sh\n[ "$1" = --version ] && {{ echo "promtool, version 9.9.9"; '
                       f'exit 0; }}\nexec {promtool.find_promtool()} "$@"\n')
    wrapper.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    again = wk_test(out, env=env)
    assert again.returncode == 0
    assert set(statuses(again).values()) == {"ok"}


def test_cache_is_safe_to_lose_and_a_foreign_file_is_left_alone(out):
    assert wk_test(out).returncode == 0
    cache = out / ".watchkeeper-cache" / "promtool.json"
    cache.unlink()
    assert set(statuses(wk_test(out)).values()) == {"ok"}
    cache.write_text("my notes\n")
    result = wk_test(out)
    assert result.returncode == 0
    assert "was not written by watchkeeper" in result.stderr
    assert cache.read_text() == "my notes\n"
    assert set(statuses(result).values()) == {"ok"}


def test_cache_dir_and_no_cache(out, tmp_path):
    elsewhere = tmp_path / "ci-cache"
    assert wk_test(out, "--cache-dir", str(elsewhere)).returncode == 0
    assert (elsewhere / "promtool.json").is_file()
    assert not (out / ".watchkeeper-cache").exists()
    assert set(statuses(wk_test(out, "--cache-dir", str(elsewhere))).values()) == {"cached"}
    assert set(statuses(wk_test(out, "--no-cache")).values()) == {"ok"}
    assert not (out / ".watchkeeper-cache").exists()


def test_batches_balance_by_size_and_keep_order(tmp_path):
    files = []
    for index, size in enumerate([50, 10, 10, 10, 10, 10]):
        path = tmp_path / f"{index}.yml"
        path.write_text("x" * size)
        files.append(path)
    parts = promtool.batches(files, 2)
    assert sorted(parts) == [[str(files[0])], [str(f) for f in files[1:]]]
    assert sorted(promtool.batches(files, 10)) == sorted([str(f)] for f in files)
    assert promtool.batches(files, 1) == [[str(f) for f in files]]


def test_parallel_runs_report_every_file_like_one_run(out):
    tests = sorted((out / "alerts" / "tests").glob("*.test.yml"))
    broken = out / "alerts" / "two.runtime.rules.yml"
    broken.write_text(broken.read_text().replace("> 536870912", "> 1073741824", 1))
    one = promtool.test_rules(tests, jobs=1)
    many = promtool.test_rules(tests, jobs=2)
    assert [(f.file, f.ok) for f in one.files] == [(f.file, f.ok) for f in many.files] == [
        (str(test), test != group_test_file(out / "alerts", "two", "runtime")) for test in tests]
    assert not many.ok and many.failed[0].details == one.failed[0].details


def test_jobs_must_be_positive(out):
    result = wk_test(out, "--jobs", "0")
    assert result.returncode == 2
    assert "--jobs must be at least 1" in result.stderr and "Traceback" not in result.stderr


def recording_promtool(folder: Path, log: Path) -> Path:
    """The real promtool behind a wrapper that notes the TMPDIR it was started with."""
    folder.mkdir()
    wrapper = folder / "promtool"
    wrapper.write_text(f'#!/bin/sh\necho "$TMPDIR" >> {log}\n'
                       f'exec {promtool.find_promtool()} "$@"\n')
    wrapper.chmod(0o755)
    return folder


def test_promtool_test_storage_goes_to_ram_and_is_removed(out, tmp_path, monkeypatch):
    ram, log = tmp_path / "ram", tmp_path / "tmpdirs.log"
    ram.mkdir()
    bin_dir = recording_promtool(tmp_path / "bin", log)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.delenv("TMPDIR", raising=False)
    monkeypatch.setattr(promtool, "RAM_TMP", ram)
    tests = sorted((out / "alerts" / "tests").glob("*.test.yml"))
    assert promtool.test_rules(tests, jobs=2).ok
    used = set(log.read_text().split())
    assert len(used) == 1 and Path(used.pop()).parent == ram
    assert list(ram.iterdir()) == []  # removed after the run

    monkeypatch.setenv("TMPDIR", str(tmp_path))  # a TMPDIR the user chose is kept
    log.unlink()
    assert promtool.test_rules(tests[:1]).ok  # (a file may run as parts: several runs)
    assert set(log.read_text().split()) == {str(tmp_path)}


def test_a_big_test_file_runs_in_parts_and_reports_as_the_one_file(out):
    """A file holding most of the work is split by groups across processes; its result,
    pass or fail, is reported under its own name with every failing part's details."""
    big = max(group_test_files(out / "alerts", "one", "availability"),  # several test groups
              key=lambda path: len(load_yaml(path)["tests"]))
    assert promtool.split_big([big], 2, None, out)[0][str(big)] != [str(big)]
    passed = promtool.test_rules([big], jobs=2)
    assert passed.ok and [(f.file, f.ok) for f in passed.files] == [(str(big), True)]
    rules = out / "alerts" / "one.availability.rules.yml"
    rules.write_text(rules.read_text().replace("absent(go_goroutines{", "absent(go_threads{", 1))
    failed = promtool.test_rules([big], jobs=2)
    assert not failed.ok and [(f.file, f.ok) for f in failed.files] == [(str(big), False)]
    assert failed.files[0].details == promtool.test_rules([big], jobs=1).files[0].details
    assert "ServiceMetricsAbsent" in failed.output and "(part " in failed.output


def _as_data(pieces):
    head, rule_files, interval, groups = pieces
    import yaml
    return (yaml.safe_load(head or "{}"), rule_files, interval,
            [(yaml.safe_load(text), max(times, default=0)) for text, times in groups])


def test_generated_test_files_are_cut_as_text_into_the_groups_a_parser_sees(out):
    """A generated test file is split without a YAML parser; each part holds exactly the
    groups (and rule files, interval, check times) parsing the file gives."""
    cut = 0
    for test in sorted((out / "alerts" / "tests").glob("*.test.yml")):
        text, base = test.read_text(), test.resolve().parent
        parsed = promtool._parsed_pieces(text, base)
        pieces = promtool._pieces(text)
        assert (pieces is None) == (parsed is None), test
        if pieces:
            cut += 1
            head, names, interval, groups = pieces
            assert _as_data((head, [str(base / n) for n in names], interval, groups)) == \
                _as_data(parsed)
    assert cut  # (the availability file holds several groups)


def test_generated_rule_files_are_read_as_text_as_a_parser_reads_them(out):
    """The results cache keys a test file never seen by its `rule_files`, read as text for
    every generated file (one group or several) and equal to what parsing gives; an edited
    or foreign file is left to the parser."""
    from watchkeeper import results_cache

    files = sorted((out / "alerts" / "tests").glob("*.test.yml"))
    assert any(len(load_yaml(f)["tests"]) == 1 for f in files)
    for test in files:
        text = test.read_text()
        assert promtool.generated_rule_files(text) == load_yaml(test)["rule_files"], test
        assert results_cache.listed_patterns(text.encode()) == load_yaml(test)["rule_files"]
        for edited in (text.replace("# Generated by watchkeeper", "# mine", 1),
                       text.replace("rule_files:\n- ", "rule_files:\n- 'quoted ' ", 1),
                       text.replace("rule_files:\n- ../", "rule_files:\n- 1.5\n- ../", 1),
                       text.replace("tests:\n", "tests:\n", 1).split("tests:\n")[0]):
            assert promtool.generated_rule_files(edited) is None, edited[:300]
    mine = files[0].read_text().replace("# Generated by watchkeeper", "# mine", 1)
    assert results_cache.listed_patterns(mine.encode()) == load_yaml(files[0])["rule_files"]


@pytest.mark.parametrize("edit", [
    lambda t: t.replace("# Generated by watchkeeper", "# mine", 1),  # not ours
    lambda t: t.replace("tests:\n- ", "tests:\n  - ", 1),              # indented entries
    lambda t: t.replace("rule_files:\n- ", "rule_files:\n- 'quoted ' ", 1),
    lambda t: t.replace("tests:\n", "group_eval_order: [a]\ntests:\n", 1),
])
def test_other_test_files_are_split_by_parsing_them(out, edit):
    """Anything but the generated layout is not cut as text (the parser splits it, or
    promtool reports it whole)."""
    big = max(group_test_files(out / "alerts", "one", "availability"),
              key=lambda path: len(load_yaml(path)["tests"]))
    assert promtool._pieces(big.read_text()) is not None
    assert promtool._pieces(edit(big.read_text())) is None


def test_a_blank_line_inside_a_generated_text_survives_the_cut(tmp_path):
    """An annotation of several paragraphs is written as a `|` block with an empty line
    inside; the cut keeps it, so the parts expect the annotation as written (dropping it
    made the alert's test fail only when run in parts)."""
    slo = {"name": "availability", "objective": "99.9%", "indicator": "availability",
           "alerting": {"annotations": {"description": "First paragraph.\n\nSecond.\n"}}}
    spec = write_spec(tmp_path, {"version": 1, "services": [
        {"name": "shop", "selector": {"job": "shop"}, "language": "python",
         "http": {"error_ratio": {"warning": "0.1%", "critical": "1%"}}, "slos": [slo]}]})
    big = generate_alerts(spec, tmp_path / "out") / "tests" / "shop.slo.test.yml"
    text = big.read_text()
    assert "\n\n" in text.split("tests:\n", 1)[1]
    pieces = promtool._pieces(text)
    assert pieces is not None
    head, names, interval, groups = pieces
    base = big.resolve().parent
    assert _as_data((head, [str(base / n) for n in names], interval, groups)) == \
        _as_data(promtool._parsed_pieces(text, base))
    result = promtool.test_rules([big], jobs=2)
    assert result.ok, result.output


def test_estimated_work_follows_steps_groups_and_listed_rules(out, tmp_path):
    """A test file's estimated promtool work grows with its evaluation steps, its groups
    and the size of the rule files it lists (what promtool evaluates), not with its own
    size; a file not laid out as watchkeeper writes it is estimated by its size."""
    test = max((out / "alerts" / "tests").glob("*.test.yml"),
               key=lambda f: len(load_yaml(f)["tests"]))
    text = test.read_text()
    base = promtool.estimated_ms(test)

    def estimate(changed: str) -> float:
        variant = test.with_name("variant.test.yml")
        variant.write_text(changed)
        try:
            return promtool.estimated_ms(variant)
        finally:
            variant.unlink()

    later = re.sub(r"eval_time: \S+", "eval_time: 10h", text)
    assert estimate(later) > base * 2
    first_group = text.split("tests:\n", 1)[1].split("\n- ", 1)[0] + "\n"
    assert estimate(text + first_group) > base
    assert "exp_alerts: []" in text
    assert estimate(text.replace("exp_alerts: []", "exp_alerts: []\n" + "#\n" * 2000)) == \
        pytest.approx(base)
    rule_file = test.parent / load_yaml(test)["rule_files"][0]
    size = rule_file.stat().st_size
    with rule_file.open("a") as handle:
        handle.write("#" * size)
    assert promtool.estimated_ms(test) > base
    foreign = text.replace("# Generated by watchkeeper", "# mine", 1)
    assert estimate(foreign) == pytest.approx(
        promtool._FILE_MS + promtool._FOREIGN_MS_PER_KB * len(foreign.encode()) / 1000)


def test_batches_balance_by_estimated_work_not_bytes(tmp_path):
    """A small file of many steps over many rules weighs more than a big file of few
    steps: the split and the batches follow the estimate."""
    (tmp_path / "big.rules.yml").write_text("#" * 20_000)
    (tmp_path / "small.rules.yml").write_text("#" * 1_000)
    head = "# Generated by watchkeeper from x.yaml\nrule_files:\n- {}\nevaluation_interval: 1m\n"
    heavy = tmp_path / "heavy.test.yml"
    heavy.write_text(head.format("big.rules.yml") + "tests:\n- interval: 1m\n"
                     "  alert_rule_test:\n  - eval_time: 5h\n")
    light = tmp_path / "light.test.yml"
    light.write_text(head.format("small.rules.yml") + "tests:\n"
                     + "- interval: 1m\n  alert_rule_test:\n  - eval_time: 1m\n#" + "x" * 50_000
                     + "\n")
    assert light.stat().st_size > 10 * heavy.stat().st_size
    assert promtool.estimated_ms(heavy) > 10 * promtool.estimated_ms(light)
    parts, weights = promtool.split_big([heavy, light], 2, None, tmp_path / "parts")
    assert parts == {str(heavy): [str(heavy)], str(light): [str(light)]}
    assert weights[str(heavy)] > 10 * weights[str(light)]


def test_promtool_gets_a_memory_limit_with_our_collector_pace_only():
    """GOGC=400 alone let a long promtool batch grow to ~2 GB resident; the soft limit
    comes with our GOGC, and a user's own choices win."""
    tuned = promtool.go_env({"PATH": "/bin"}, parallel=True)
    assert tuned == {"PATH": "/bin", "GOGC": "400", "GOMAXPROCS": "1", "GOMEMLIMIT": "256MiB"}
    assert promtool.go_env({"GOMEMLIMIT": "1GiB"}, parallel=False) == \
        {"GOMEMLIMIT": "1GiB", "GOGC": "400"}
    # a user who set GOGC chose the pace: no limit added
    assert promtool.go_env({"GOGC": "100"}, parallel=False) == {"GOGC": "100"}
