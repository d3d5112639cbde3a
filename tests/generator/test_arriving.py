"""Generation that starts while the spec is still being read (`load.Loading`,
`generate.Arriving`): worker processes forked on the first services read the later ones
from disk; the files are those of a spec read whole first, the tasks those of `_ranges`; a
spec the streamed read gives up on (merge keys) is generated again from the usual read,
and a bad one is one message per problem, exit 2, with nothing left behind."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from bench_spec import bench_spec
from watchkeeper import cli, load, spill
from watchkeeper import generate as gen

REPO = Path(__file__).resolve().parents[2]


def _bench_text(count: int) -> str:
    return yaml.safe_dump(bench_spec(count), sort_keys=False)


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under `root` but the build record (its keys hash the spec's name)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and ".watchkeeper-cache" not in p.parts}


def test_records_sealed_after_a_fork_are_read_by_the_forked_process(tmp_path):
    """spill.Records: a process forked before some records were added reads them once
    they are sealed (not before: unsealed records are not there for it yet)."""
    records = spill.Records(tmp_path)
    items = [{"n": i, "text": "x" * i} for i in range(23)]
    for item in items[:10]:
        records.append(item)
    records.seal()
    go_read, told = os.pipe()
    answer, send = os.pipe()
    child = os.fork()
    if child == 0:  # forked with 10 records: waits, then reads past them
        os.close(told)
        os.read(go_read, 1)
        before = len(records)
        os.write(send, pickle.dumps((before, records.read(5, 30), records.read(19, 21))))
        os._exit(0)
    os.close(go_read)
    for item in items[10:20]:
        records.append(item)
    records.seal()
    for item in items[20:]:  # added, not sealed
        records.append(item)
    os.write(told, b"x")
    os.close(send)
    with os.fdopen(answer, "rb") as pipe:
        before, read, tail = pickle.loads(pipe.read())
    assert os.waitpid(child, 0)[1] == 0
    assert before == 10
    assert read == items[5:20] and tail == items[19:20]
    assert records.read(0, 30) == items  # this process knows its own, sealed or not
    records.close()
    assert list(tmp_path.iterdir()) == []


class _Counted:
    """An `Arriving` of `count` services that records how far it was asked to read."""

    def __init__(self, count: int) -> None:
        self.count, self.asked = count, 0
        self.services: list[int] = []

    def more(self, count: int) -> bool:
        self.asked = max(self.asked, count)
        self.services = list(range(min(count, self.count)))
        return count <= self.count


@pytest.mark.parametrize("workers", [2, 3])
@pytest.mark.parametrize("count", [64, 65, 199, 200, 201, 250, 999, 1000, 1001, 2500])
def test_ranges_of_arriving_services_are_the_ranges_of_the_whole(count, workers):
    """While services arrive, the first pool's tasks are `_ranges` of its slice (but for
    a whole first task in a spec too short for `_ranges` to make it whole), and the first
    one is handed out as soon as its services are read."""
    arriving = _Counted(count)
    ranges = gen._arriving_ranges(arriving, 0, gen.SERVICES_PER_POOL, workers)
    first = next(ranges)
    assert first == (0, gen.CHUNK_MAX) and arriving.asked == gen.CHUNK_MAX
    stop = min(count, gen.SERVICES_PER_POOL)
    whole = gen._ranges(stop, workers)
    tasks = [first, *ranges]
    if count >= gen.CHUNK_MAX * workers * 2:
        assert tasks == whole
    else:  # the rest as `_ranges` splits it
        assert tasks[1:] == [(gen.CHUNK_MAX + low, gen.CHUNK_MAX + high)
                             for low, high in gen._ranges(stop - gen.CHUNK_MAX, workers)]


def test_loading_ends_as_load_spec_and_reads_only_as_far_as_asked(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(_bench_text(90), encoding="utf-8")
    loading = load.Loading(path)
    assert loading.more(10) and 10 <= len(loading.services) < 90
    assert not loading.more(91)  # the spec has fewer
    spec, whole = loading.spec(), load.load_spec(path)
    assert spec.services is loading.services
    assert list(spec.services) == list(whole.services)
    assert spec.alertmanager == whole.alertmanager
    loading.close()


def test_generating_while_reading_gives_the_files_of_the_spec_read_first(tmp_path,
                                                                         monkeypatch):
    """In memory, several pools (one per 40 services here): the files of a spec being read
    are those of the spec loaded whole, and its workers read services added after they
    were forked (a test that forked after the whole read would pass the first check
    only)."""
    monkeypatch.setattr(gen, "SERVICES_PER_POOL", 40)
    path = tmp_path / "spec.yaml"
    path.write_text(_bench_text(130), encoding="utf-8")
    whole = gen.generate(load.load_spec(path), "spec.yaml")
    loading = load.Loading(path)
    read_when_forked = []
    start = gen._Recycled._start

    def started(self):
        read_when_forked.append(len(loading.services))
        return start(self)

    monkeypatch.setattr(gen._Recycled, "_start", started)
    assert gen.generate(loading, "spec.yaml") == whole
    assert len(read_when_forked) == 4 and read_when_forked[0] < 130  # 4 pools of 40
    loading.close()


def _generate(spec: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "watchkeeper.cli", "generate", str(spec),
                           "--out", str(out)], capture_output=True, text=True, check=False)


def test_a_spec_the_streamed_read_gives_up_on_is_generated_again(tmp_path, monkeypatch):
    """A merge key in service 80 (the workers started on the first services): read again
    the usual way, generated from scratch into a new staging folder; the files are those
    of the same spec written without the merge key."""
    text = _bench_text(100)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    plain, merged = tmp_path / "a" / "spec.yaml", tmp_path / "b" / "spec.yaml"  # one name
    plain.write_text(text, encoding="utf-8")
    assert text.count("    job: svc-80\n") == 1
    merged.write_text(text.replace("    job: svc-80\n", "    <<: {job: svc-80}\n"),
                      encoding="utf-8")
    assert load._streamed(merged) is load._Doubt
    reread = []
    generate = gen.generate

    def spy(spec, *args, **kwargs):
        try:
            return generate(spec, *args, **kwargs)
        except gen.Reread:
            reread.append(True)
            raise

    monkeypatch.setattr(gen, "generate", spy)
    assert cli.main(["generate", str(merged), "--out", str(tmp_path / "merged")]) == 0
    assert reread == [True]
    assert _generate(plain, tmp_path / "plain").returncode == 0
    assert _tree(tmp_path / "merged") == _tree(tmp_path / "plain")
    assert sorted(p.name for p in (tmp_path / "merged").iterdir()) == [
        ".watchkeeper-cache", "alerts", "dashboards"]  # the first staging folder went


def test_a_problem_found_while_generating_is_one_message_each_and_leaves_nothing(tmp_path):
    """Problems in services 70 and 95 (found after the workers started): one message
    each, at its line, as `validate` words them; exit 2, no traceback; a new output folder
    is not left behind, an existing one is left as it was."""
    lines = _bench_text(100).splitlines(keepends=True)
    at = [i for i, line in enumerate(lines) if line in ("    job: svc-70\n",
                                                        "    job: svc-95\n")]
    for index in at:  # the `language:` line after each selector
        assert lines[index + 1] == "  language: go\n"
        lines[index + 1] = "  language: cobol\n"
    spec = tmp_path / "bad.yaml"
    spec.write_text("".join(lines), encoding="utf-8")
    validated = subprocess.run([sys.executable, "-m", "watchkeeper.cli", "validate",
                                str(spec)], capture_output=True, text=True, check=False)
    assert validated.returncode == 2 and validated.stderr.count("error: ") == 2

    fresh = _generate(spec, tmp_path / "new")
    assert fresh.returncode == 2 and "Traceback" not in fresh.stderr
    assert fresh.stderr == validated.stderr
    assert f"{spec}:{at[0] + 2}: services[70].language" in fresh.stderr
    assert not (tmp_path / "new").exists()

    good = tmp_path / "good.yaml"
    good.write_text(_bench_text(3), encoding="utf-8")
    assert _generate(good, tmp_path / "old").returncode == 0
    before = _tree(tmp_path / "old")
    again = _generate(spec, tmp_path / "old")
    assert again.returncode == 2 and again.stderr == validated.stderr
    assert _tree(tmp_path / "old") == before
    assert sorted(p.name for p in (tmp_path / "old").iterdir()) == [
        ".watchkeeper-cache", "alerts", "dashboards"]
