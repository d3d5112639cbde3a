"""Pairs kept on disk and merged back sorted (spill.py), and the run that uses them: a
`watchkeeper generate` whose path → sha256 map, manifests and build record go through many
small runs on disk (tiny buffers) writes exactly what a run with the defaults writes, and
still refuses to lose a hand edit or a foreign file."""

from __future__ import annotations

import copy
import itertools
import json
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_build_cache import run
from test_ownership import FOREIGN, SPEC, assert_staged_generation_writes, plant_foreign, snapshot
from watchkeeper import cli, memo, spill, writers
from watchkeeper.load import load_spec

KEYS = st.text(alphabet="ab/.-1", min_size=0, max_size=4)
PAIRS = st.lists(st.tuples(KEYS, st.sampled_from(["x", "y", "z", ""])), max_size=60)


@pytest.fixture
def tiny(monkeypatch):
    """Runs of a pair or two, merged whenever there are 2: every read crosses several files."""
    monkeypatch.setattr(spill, "BUFFER", 3)
    monkeypatch.setattr(spill, "FAN_IN", 2)


@settings(max_examples=60, deadline=None)
@given(pairs=PAIRS)
def test_pairs_come_back_sorted_stably_and_as_often_as_read(pairs, tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(spill, "BUFFER", 3)
        patch.setattr(spill, "FAN_IN", 2)
        kept = spill.SortedPairs(tmp_path_factory.mktemp("spill"))
        for key, value in pairs:
            kept.add(key, value)
        expected = sorted(pairs, key=lambda pair: pair[0])  # sorted() is stable
        assert list(kept) == expected
        # two reads under way at once do not disturb each other
        assert list(zip(kept, kept, strict=True)) == list(zip(expected, expected, strict=True))
        assert len(kept) == len(pairs)
        assert list(spill.last_of_each(kept)) == sorted(dict(pairs).items())
        groups = {key: tuple(v for k, v in pairs if k == key) for key, _ in pairs}
        assert list(spill.grouped(kept)) == sorted(groups.items())
        kept.close()


def test_a_key_or_value_with_a_nul_or_line_break_is_refused(tmp_path):
    kept = spill.SortedPairs(tmp_path)
    for key, value in (("a\0b", "x"), ("a\nb", "x"), ("a", "x\ny")):
        kept.add(key, value)  # buffered: checked when written out
    with pytest.raises(ValueError, match="NUL or a line break"):
        spill.Run(kept, tmp_path)


def test_written_reads_like_the_dict_it_replaces(tmp_path, tiny):
    files = {f"alerts/svc-{i}.{part}.rules.yml": f"{i:064x}"
             for i, part in itertools.product(range(7), ("a", "b"))}
    written = writers.Written(tmp_path, files)
    written.update({"alerts/svc-1.a.rules.yml": "f" * 64})  # given again: the last wins
    expected = dict(files, **{"alerts/svc-1.a.rules.yml": "f" * 64})
    assert list(written.items()) == sorted(expected.items())
    assert len(written) == len(expected)
    chosen = written.select(lambda path: ".a." in path)
    assert list(chosen.items()) == sorted((p, d) for p, d in expected.items() if ".a." in p)
    assert list(tmp_path.iterdir()) == []  # anonymous files: nothing to see or clean up


def test_generate_through_tiny_runs_writes_what_the_defaults_write(tmp_path, monkeypatch):
    plain, small = tmp_path / "plain", tmp_path / "small"
    plain.mkdir(), small.mkdir()
    many = copy.deepcopy(SPEC)
    many["services"] += [{**many["services"][0], "name": f"svc-{i}",
                          "selector": {"job": f"svc-{i}"}} for i in range(3)]
    fewer = copy.deepcopy(many)
    del fewer["services"][1]  # beta goes: its files are removed
    fewer["services"][0]["runtime"]["memory"]["critical"] = "3GiB"  # alpha's files change
    for out in (plain, small):
        plant_foreign(out)
    for spec in (many, many, fewer):
        assert run(spec, plain) == 0
        with monkeypatch.context() as patch:
            patch.setattr(spill, "BUFFER", 3)
            patch.setattr(spill, "FAN_IN", 2)
            assert run(spec, small) == 0
        record = ".watchkeeper-cache/generate.json"
        assert {k: v for k, v in snapshot(small).items() if k != record} == \
            {k: v for k, v in snapshot(plain).items() if k != record}
    assert not any(path.name.startswith("beta.") for path in small.rglob("*"))
    for relative, text in FOREIGN.items():
        assert (small / relative).read_text() == text
    manifest = (small / "alerts" / writers.MANIFEST).read_text().splitlines()
    assert manifest == sorted(manifest, key=lambda line: line.split("  ", 1)[1])

    # a manifest out of order, one path with two digests (a swap cut short): still read
    # right, so a hand edit is still caught and an untouched file is not taken for one
    lines = (small / "alerts" / writers.MANIFEST).read_text().splitlines()
    first = lines[0].split("  ", 1)[1]
    lines = [f"{'0' * 64}  {first}", *reversed(lines)]
    (small / "alerts" / writers.MANIFEST).write_text("".join(f"{line}\n" for line in lines))
    edited = small / "alerts" / first
    edited.write_text(edited.read_text() + "# mine\n")
    with monkeypatch.context() as patch:
        patch.setattr(spill, "BUFFER", 3)
        patch.setattr(spill, "FAN_IN", 2)
        assert run(fewer, small) == 2
        assert edited.read_text().endswith("# mine\n")
        assert run(fewer, small, "--discard-edits") == 0
    assert snapshot(small)[f"alerts/{first}"] == snapshot(plain)[f"alerts/{first}"]


def test_the_build_record_is_read_entry_by_entry_and_not_sent_whole(tmp_path):
    """A warm run keeps only where each service's entry starts in the record (the entries
    are read when needed), by a hash of the name; pickled, it leaves this run's record
    behind. The record stays one JSON document; one of the older one-line format is
    replaced (nothing reused), one watchkeeper did not write is left alone."""
    import pickle

    from watchkeeper import build_cache

    assert run(SPEC, tmp_path) == 0
    path = tmp_path / build_cache.FOLDER / build_cache.RECORD
    lines = path.read_text().splitlines()
    assert json.loads(path.read_text())["services"].keys() == {"alpha", "beta"}
    assert len(lines) == 4 and lines[1].startswith('"alpha":') and lines[-1] == "}}"
    reuse = build_cache.load(tmp_path, "spec.yaml", cli.OUTPUT_FOLDERS)
    assert len(reuse.previous) == 2 and reuse.previous.get("gamma") is None
    for name in ("alpha", "beta"):  # where its line starts
        at = reuse.previous.get(name)
        assert path.read_bytes()[at:].startswith(f'"{name}":'.encode())
    sent = pickle.loads(pickle.dumps(reuse))
    assert sent.previous == reuse.previous and sent.built is None
    alpha = load_spec(tmp_path / "spec.yaml").services[0]
    recorded = json.loads(path.read_text())["services"]["alpha"]
    assert reuse.files(alpha, reuse.key(alpha)) == recorded["files"]  # read at its offset
    assert reuse.files(alpha, "another key") is None

    document = json.loads(path.read_text())
    document["format"] = "watchkeeper generate record 1"
    path.write_text(json.dumps(document, separators=(",", ":")))  # the old layout
    old = build_cache.load(tmp_path, "spec.yaml", cli.OUTPUT_FOLDERS)
    assert len(old.previous) == 0 and old.writable
    path.write_text(json.dumps({"mine": True}))
    assert not build_cache.load(tmp_path, "spec.yaml", cli.OUTPUT_FOLDERS).writable


def test_records_read_back_any_range_in_this_and_a_forked_process(tmp_path):
    """spill.Records: objects pickled one at a time, read back by range (one read), also
    by a process forked after they were added (as generate's workers are)."""
    import os
    import pickle

    records = spill.Records(tmp_path)
    items = [{"n": i, "text": "x" * i} for i in range(40)]
    for item in items:
        records.append(item)
    records.seal()
    assert len(records) == 40 and records.read(0, 40) == items
    assert records.read(7, 9) == items[7:9] and records.read(39, 99) == items[39:]
    assert records.read(5, 5) == [] and records.read(-3, 2) == items[:2]
    reading, writing = os.pipe()
    child = os.fork()
    if child == 0:  # the forked process: reads what it inherited, sends it back
        os.write(writing, pickle.dumps(records.read(10, 20)))
        os._exit(0)
    os.close(writing)
    with os.fdopen(reading, "rb") as pipe:
        assert pickle.loads(pipe.read()) == items[10:20]
    assert os.waitpid(child, 0)[1] == 0
    records.close()
    assert list(tmp_path.iterdir()) == []  # anonymous: nothing left behind


def test_runs_below_the_buffer_stay_in_memory_and_read_the_same(tmp_path, monkeypatch):
    monkeypatch.setattr(spill, "BUFFER", 10)
    pairs = [("a", "1"), ("b", "22"), ("c", "333")]
    small = spill.Run(pairs[:2], tmp_path)
    large = spill.Run(iter(pairs * 2), tmp_path)
    assert small._file is None and large._file is not None
    assert list(small) == pairs[:2] and list(large) == pairs * 2 == list(large)
    assert (small.count, large.count) == (2, 6)
    with pytest.raises(ValueError):
        spill.Run([("a\n", "1")], tmp_path)


def _named_copies(tmp_path: Path, count: int) -> Path:
    """A JSON spec of `count` copies of SPEC's first service named svc-0, svc-1, ..."""
    many = copy.deepcopy(SPEC)
    many["services"] = [{**SPEC["services"][0], "name": f"svc-{i}", "selector": {"job": f"svc-{i}"}}
                        for i in range(count)]
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(many))
    return path


def test_workers_read_their_services_from_disk_and_write_what_memory_writes(tmp_path,
                                                                             monkeypatch):
    """The process pool over a spec whose services are on disk (what the CLI loads): the
    parent holds names only, each worker reads its range; the files are byte for byte
    what the in-memory rendering gives, with tasks submitted a few at a time."""
    from watchkeeper import generate as generation

    path = _named_copies(tmp_path, 30)
    expected = generation.generate(load_spec(path), "spec.json")
    stored = load_spec(path, store=True)
    monkeypatch.setattr(generation, "PARALLEL_MIN_SERVICES", 1)
    monkeypatch.setattr(generation, "CHUNK_MAX", 2)
    monkeypatch.setattr(generation, "TASKS_AHEAD", 1)
    monkeypatch.setattr(generation.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)

    def read_all(self):
        raise AssertionError("the parent read every service back")
    monkeypatch.setattr(type(stored.services), "__iter__", read_all)
    out = tmp_path / "out"
    out.mkdir()
    assert_staged_generation_writes(out, stored, "spec.json", expected)


# The notes file and the real `generate._run_range` for `_noting_pid` (set by the test
# below; the forked workers inherit them).
_NOTING: dict = {}


def _noting_pid(bounds: tuple[int, int], *rest: object) -> list | int:
    """`generate._run_range`, noting the worker process that ran it."""
    with _NOTING["file"].open("a") as notes:
        notes.write(f"{os.getpid()} {bounds[0]} {bounds[1]}\n")
    return _NOTING["run"](bounds, *rest)


def test_workers_are_replaced_by_fresh_forks_every_slice_of_services(tmp_path, monkeypatch):
    """Every SERVICES_PER_POOL services go to newly forked workers (a worker's memory
    creeps as it renders; replacing them keeps the peak that of one slice): no process
    renders services of two slices, every service is rendered once, in order, and the
    files are byte for byte the in-memory rendering's."""
    from watchkeeper import generate as generation

    path = _named_copies(tmp_path, 23)
    expected = generation.generate(load_spec(path), "spec.json")
    monkeypatch.setattr(generation, "PARALLEL_MIN_SERVICES", 1)
    monkeypatch.setattr(generation, "CHUNK_MAX", 2)
    monkeypatch.setattr(generation, "SERVICES_PER_POOL", 7)
    monkeypatch.setattr(generation.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    monkeypatch.setitem(_NOTING, "file", tmp_path / "pids")
    monkeypatch.setitem(_NOTING, "run", generation._run_range)
    monkeypatch.setattr(generation, "_run_range", _noting_pid)
    out = tmp_path / "out"
    out.mkdir()
    assert_staged_generation_writes(out, load_spec(path, store=True), "spec.json", expected)
    notes = [tuple(map(int, line.split())) for line in (tmp_path / "pids").read_text().splitlines()]
    assert sorted(i for _, start, stop in notes for i in range(start, stop)) == list(range(23))
    slices = {}
    for pid, start, stop in notes:
        assert start // 7 == (stop - 1) // 7, "a task crosses a slice"
        slices.setdefault(pid, set()).add(start // 7)
    assert all(len(seen) == 1 for seen in slices.values()), slices
    assert {s for seen in slices.values() for s in seen} == {0, 1, 2, 3}
    assert os.getpid() not in slices


def test_shelf_runs_read_back_merged_in_key_order_runs_in_number_order(tmp_path, monkeypatch):
    """spill.Shelf: runs put in any order by copies sent to other processes (pickled: the
    path only) read back as one stream in key order, equal keys in the order of the runs'
    numbers, then as put; merged a few at a time (SHELF_FAN_IN 2: several levels of
    merges on disk). The copies remove nothing; the shelf's maker removes its folder when
    closed, or when it goes."""
    import pickle

    monkeypatch.setattr(spill, "SHELF_FAN_IN", 2)
    shelf = spill.Shelf(tmp_path)
    runs = {number: [(f"k{(number * 7 + i) % 5}", f"{number}.{i}") for i in range(4)]
            for number in (30, 2, 11, 7, 400, 0)}
    for number, pairs in runs.items():  # numbers out of order, each from its own copy
        copy_of = pickle.loads(pickle.dumps(shelf))
        copy_of.put("files", number, pairs)
        copy_of.close()  # a copy removes nothing
    shelf.put("entries", 3, [("z", "other kind")])
    expected = sorted((pair for number in sorted(runs) for pair in runs[number]),
                      key=lambda pair: pair[0])  # stable: run number, then as put
    assert list(shelf("files")) == expected == list(shelf("files"))  # read as often
    assert list(shelf("entries")) == [("z", "other kind")] and list(shelf("none")) == []
    with pytest.raises(FileExistsError):
        shelf.put("files", 2, [])  # a run is put once
    with pytest.raises(ValueError, match="NUL or a line break"):
        shelf.put("files", 5, [("a\nb", "x")])
    folder = Path(shelf.path)
    assert folder.parent == tmp_path and folder.is_dir()
    shelf.close()
    assert not folder.exists()
    dropped = spill.Shelf(tmp_path)
    folder = Path(dropped.path)
    del dropped
    assert not folder.exists() and list(tmp_path.iterdir()) == []


def test_written_reads_the_shelf_after_its_own_pairs(tmp_path):
    """What the parent gave `Written` (the shared files) and what workers put on its shelf
    read as one map in path order; a path in both keeps the shelf's digest (given later,
    as the dict this replaces kept)."""
    written = writers.Written(tmp_path, {"alerts/b.yml": "1" * 64, "alerts/d.yml": "2" * 64})
    shelf = written.shelf()
    assert written.shelf() is shelf
    shelf.put(writers.FILES, 0, [("alerts/c.yml", "3" * 64), ("alerts/b.yml", "4" * 64)])
    shelf.put(writers.FILES, 50, [("alerts/a.yml", "5" * 64)])
    assert list(written.items()) == [("alerts/a.yml", "5" * 64), ("alerts/b.yml", "4" * 64),
                                     ("alerts/c.yml", "3" * 64), ("alerts/d.yml", "2" * 64)]
    assert len(written) == 4
    folder = Path(shelf.path)
    written.close()
    assert not folder.exists()


def _pool_forced(monkeypatch, generation, cores: int) -> None:
    """`generate` on `cores` cores (1: no pool) for any number of services, in tiny tasks."""
    monkeypatch.setattr(generation, "PARALLEL_MIN_SERVICES", 1)
    monkeypatch.setattr(generation, "CHUNK_MAX", 2)
    monkeypatch.setattr(generation, "SERVICES_PER_POOL", 7)
    monkeypatch.setattr(generation.os, "sched_getaffinity", lambda pid: set(range(cores)),
                        raising=False)


def test_workers_put_their_results_on_the_shelf_and_the_record_is_what_the_parent_held(
        tmp_path, monkeypatch):
    """Through the pool the parent is sent only how many services each task did: the
    files (path → sha256) and the build record entries are put on the shelf by the
    workers and merged from disk (in runs of 2: several levels). The trees, manifests and
    the build record are byte for byte those of the same run without a pool, where the
    parent holds every service's entry itself; the shelf is gone afterwards, and a warm
    run over it reuses every service."""
    from watchkeeper import generate as generation

    spec = json.loads(_named_copies(tmp_path, 23).read_text())
    monkeypatch.setattr(spill, "SHELF_FAN_IN", 2)
    sent: list = []
    real = generation._collect

    def noting(names, parts, result, reuse):
        real(names, (sent.append(part) or part for part in parts), result, reuse)

    monkeypatch.setattr(generation, "_collect", noting)
    trees = {}
    for cores in (1, 2):
        out = tmp_path / f"cores-{cores}"
        out.mkdir()
        with monkeypatch.context() as patch:
            _pool_forced(patch, generation, cores)
            sent.clear()
            assert run(spec, out) == 0
            if cores == 1:
                assert len(sent) == 23 and all(isinstance(part, tuple) for part in sent)
            else:  # counts only, one per task (of a few services each)
                assert all(type(part) is int and part >= 1 for part in sent)
                assert sum(sent) == 23 and len(sent) >= 6
        trees[cores] = snapshot(out)
        assert not [p for p in out.iterdir() if p.name.startswith(writers.STAGE_PREFIX)]
    assert trees[1] == trees[2]  # the record included: same entries, same order, same text
    record = json.loads(trees[2][".watchkeeper-cache/generate.json"])["services"]
    assert sorted(record) == sorted(f"svc-{i}" for i in range(23)) == list(record)
    with monkeypatch.context() as patch:
        _pool_forced(patch, generation, 2)
        sent.clear()
        assert run(spec, tmp_path / "cores-2") == 0
    assert snapshot(tmp_path / "cores-2") == trees[2]  # every service reused, same record


def test_a_worker_failing_mid_run_leaves_no_shelf_or_stage_behind(tmp_path, monkeypatch,
                                                                   capsys):
    """A worker that cannot write (disk full) after other tasks put theirs on the shelf:
    one message, exit 2, nothing changed in the output folder, no staging folder or shelf
    left in it."""
    import errno

    from watchkeeper import generate as generation

    spec = json.loads(_named_copies(tmp_path, 23).read_text())
    out = tmp_path / "out"
    out.mkdir()
    assert run(spec, out) == 0
    before = snapshot(out)
    real = generation.OUTPUTS["alerts"].per_service

    def full(service, spec_name, parts=None):
        if service.name == "svc-17":  # past several tasks' runs on the shelf
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), f"{out}/alerts/svc-17")
        return real(service, spec_name, parts)

    monkeypatch.setitem(generation.OUTPUTS, "alerts",
                        generation.Output(full, generation.OUTPUTS["alerts"].shared))
    _pool_forced(monkeypatch, generation, 2)
    monkeypatch.setattr(memo, "abstract", lambda service: None)  # each service built
    for service in spec["services"]:  # none reused from the record
        service["runtime"] = {"memory": {"critical": "3GiB"}}
    capsys.readouterr()
    assert run(spec, out) == 2
    error = capsys.readouterr().err
    assert error.strip() == f"watchkeeper: No space left on device: {out}/alerts/svc-17"
    assert snapshot(out) == before
    assert sorted(p.name for p in out.iterdir()) == [
        ".watchkeeper-cache", "alerts", "dashboards", "spec.yaml"]
    assert not [p for p in out.rglob("*") if p.name.startswith(writers.STAGE_PREFIX)]


def test_lines_read_back_in_order_as_often_as_needed_and_a_stored_spec_keeps_its_names_there(
        tmp_path, monkeypatch):
    """spill.Lines: strings appended one at a time, read back in order (across read
    chunks, also while more are appended); a stored spec's names are kept there, in spec
    order, and nothing is left on disk once closed."""
    monkeypatch.setattr(spill, "_CHUNK", 7)  # names cut by every read
    lines = spill.Lines(tmp_path)
    names = [f"svc-{i}" * (i % 3 + 1) for i in range(50)]
    for name in names[:20]:
        lines.append(name)
    reading = iter(lines)
    assert [next(reading) for _ in range(5)] == names[:5]
    for name in names[20:]:
        lines.append(name)
    assert list(reading) == names[5:20]  # appended after the read began: not read by it
    assert list(lines) == names == list(lines) and len(lines) == 50
    assert "svc-7svc-7" in lines and "svc-7" not in lines
    with pytest.raises(ValueError, match="line break"):
        lines.append("a\nb")
    lines.close()
    stored = load_spec(_named_copies(tmp_path, 30), store=True)
    assert isinstance(stored.services.names, spill.Lines)
    assert list(stored.services.names) == [f"svc-{i}" for i in range(30)]
    stored.services.close()
    assert list(p.name for p in tmp_path.iterdir()) == ["spec.json"]
