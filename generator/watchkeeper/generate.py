"""From a resolved spec to the generated files. No I/O here: rendered text goes either
back to the caller (in memory) or, as soon as each file exists, to a `sink` that writes it
(the CLI passes a staging folder's `put`, so output never has to fit in memory at once)."""

from __future__ import annotations

import functools
import gc
import itertools
import multiprocessing
import os
import signal
import sys
from collections import deque
from collections.abc import Callable, Collection, Hashable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from typing import Protocol, TypeVar, overload, runtime_checkable

from watchkeeper import alertmanager, naming
from watchkeeper.build_cache import ENTRIES, Reuse, entry_text
from watchkeeper.memo import Memo
from watchkeeper.model import Piece, Service, Spec, service_names
from watchkeeper.parts import Parts
from watchkeeper.rule_tests import (
    Estimate,
    Lane,
    Leaf,
    estimate,
    gives_to,
    host,
    lanes_apart,
    layout,
    made_directly,
    own_part,
    test_file,
)
from watchkeeper.rules import build_groups, rule_file
from watchkeeper.signals.common import test_step
from watchkeeper.spill import Shelf
from watchkeeper.writers import FILES, HEADER

T = TypeVar("T")

# Relative path → text; a file drawn from every service (the overview) may come as an
# iterable of pieces, so that it never has to be in memory whole.
Files = dict[str, str | Iterable[str]]
# Writes one rendered file (relative path, text or pieces) and returns its sha256. Must be
# picklable: worker processes call it for the services they render.
Sink = Callable[[str, str | Iterable[str]], str]

# Below this many services a process pool costs more than it saves.
PARALLEL_MIN_SERVICES = 64
# Services per task sent to a worker process (see `_ranges`).
CHUNK_MAX, CHUNK_MIN = 50, 4


def service_alert_files(service: Service, header: str, parts: Parts | None = None) -> Files:
    """A rule file per rule group of the service, ``alerts/<service>.<section>.rules.yml``,
    and promtool test files ``alerts/tests/<service>.<section>[+<section>...].test.yml``
    (and ``<service>.<section>.with-<section>.test.yml`` for a group's scenarios that also
    check another group's alerts, when the others are cheaper without those rules: see
    `rule_tests.own_part`). The names are built in `naming`, which says why they look so.

    promtool loads and evaluates every rule of every file a test lists, at every step of
    every test group; a test file lists only the rule files its checks read. Groups whose
    tests share a step may share a test file where that is cheaper for promtool (fewer
    test groups, see `rule_tests.layout`). A group reads another's recordings only where
    it says so (`Piece.needs`: the SLO report reads the SLO rates); its tests then list
    that group's rule file too. How the test groups are spread over files: `_test_files`.

    With `parts` (one per run, see `parts.Parts`), signals' pieces and rule groups with
    the same inputs as an earlier service's are taken from it, and so is a held group's
    rule file.
    """
    files: Files = {}
    groups = build_groups(service, parts)
    name = {id(g): naming.group_stem(service.name, g.group) for g in groups}
    step = test_step(service)
    # held groups are the same objects for every service with their inputs (not when links
    # were added: those are copies, see `build_groups`), so what is made from them alone
    # is made once
    same: _Same = parts.same if parts is not None and not (
        service.runbook_url or service.grafana_url) else _direct
    for group in groups:
        files[naming.rules_path(name[id(group)])] = same(
            "rules", (group,), header, functools.partial(rule_file, [group], header))
    estimate_of = functools.partial(_estimate, same)
    leaf = parts.leaf if same is not _direct else made_directly
    plan = [_Planned(members, _checked(members, groups, service.name))
            for members in layout(groups, step, estimate_of)]
    files.update(_test_files(_Writer(service, name, header, leaf, step), plan, same))
    return files


class _Same(Protocol):
    """`parts.Parts.same`, or `_direct` when nothing is held."""

    def __call__(self, kind: str, objects: tuple[object, ...], extra: Hashable,
                 make: Callable[[], T]) -> T: ...


def _direct(kind: str, objects: tuple[object, ...], extra: Hashable,
            make: Callable[[], T]) -> T:
    """`parts.Parts.same` without parts: made each time."""
    return make()


def _estimate(same: _Same, group: Piece, step: float) -> Estimate:
    return same("estimate", (group,), step, functools.partial(estimate, group, step))


# --- Test files --------------------------------------------------------------------------
#
# `layout` plans which rule groups' scenarios share a test file. Each planned file becomes
# one test file or more: a group's scenarios that read only its own rules may go apart
# (`own_part`), and so may a shared file's test groups that read only some of its groups
# (`lanes_apart`). Those lanes apart would each cost promtool a process of their own; where
# the service has a file of one rule group checking only its own rules at their step (the
# host, `rule_tests.host`), they are tested in the host's file instead.


@dataclass(frozen=True, eq=False)
class _Planned:
    """A test file `layout` planned: its rule groups (`members`) and every rule group their
    scenarios check (`checked`, see `_checked`), in rule order."""

    members: list[Piece]
    checked: list[Piece]

    def inputs(self) -> tuple[Piece | None, ...]:
        """The objects its test files are made from, as `Parts.same` keys them. The None
        keeps ([a, b], [c]) from meeting ([a], [b, c])."""
        return (*self.members, None, *self.checked)


@dataclass(frozen=True)
class _Writer:
    """What every test file of one service is written with."""

    service: Service
    stems: dict[int, str]  # rule group (by id) → its stem, `naming.group_stem`, in rule order
    header: str
    leaf: Leaf
    step: float  # the service's `test_step`

    def extra(self, gives: bool) -> tuple[str, float, str, bool]:
        """What test files depend on besides rule groups, for `Parts.same`: the stems follow
        from the service's name and the groups; `gives`: see `_gives`."""
        return self.service.name, self.step, self.header, gives

    def stem(self, groups: Iterable[Piece]) -> str:
        """The name of a test file of `groups`' scenarios, the first one's group first."""
        return naming.shared_test_stem([self.stems[id(g)] for g in groups])

    def file(self, tested: Piece, rules: Sequence[Piece], packed: bool = False) -> str:
        """A test file of `tested`'s scenarios loading (only) the rule files of `rules`;
        `packed`: see `test_file`."""
        listed = [naming.listed_rules(self.stems[id(g)]) for g in rules]
        return test_file(self.service, [tested], listed, rules, self.header, self.leaf,
                         packed=packed)


def _test_files(writer: _Writer, plan: Sequence[_Planned], same: _Same) -> dict[str, str]:
    """Every test file of the files `layout` planned (`plan`).

    The host's file is made last: it takes the lanes the others set aside for it (see
    `_gives`), known only once they are made (or had from `same`, which keeps them with
    their files). So the host's files depend on the givers' inputs as well as its own,
    and are keyed by all of them (the lanes follow from those alone). A host has a giver
    (else it is an ordinary file), so that key holds at least three Nones and every other
    key only one: in the "tests" table a host's files never meet another file's (files,
    lanes)."""
    at_host = host([p.members for p in plan], [p.checked for p in plan])
    hosting = plan[at_host] if at_host is not None else None
    givers = [p for p in plan if hosting is not None and _gives(p, hosting)]
    if not givers:
        hosting = None
    files: dict[str, str] = {}
    given: list[Lane] = []
    for planned in plan:
        if planned is hosting:
            continue
        gives = planned in givers
        made, lanes = same("tests", planned.inputs(), writer.extra(gives), functools.partial(
            _planned_files, writer, planned, gives))
        files.update(made)
        given.extend(lanes)
    if hosting is not None:
        inputs = (*hosting.inputs(), *(o for giver in givers for o in (None, *giver.inputs())))
        files.update(same("tests", inputs, writer.extra(False), functools.partial(
            _host_files, writer, hosting, given)))
    return files


def _gives(planned: _Planned, hosting: _Planned) -> bool:
    """Whether `planned`'s lanes apart go to the host's file (`rule_tests.gives_to`)."""
    return planned is not hosting and gives_to(planned.members, hosting.members)


def _planned_files(writer: _Writer, planned: _Planned, gives: bool
                   ) -> tuple[dict[str, str], list[Lane]]:
    """The test files of a planned file other than the host's, and the lanes it sets aside
    for the host's (only when it `gives`)."""
    if len(planned.members) == 1:
        return _group_files(writer, planned.members[0], planned.checked), []
    return _shared_files(writer, planned.members, planned.checked, gives)


def _group_files(writer: _Writer, group: Piece, checked: list[Piece]) -> dict[str, str]:
    """The test file of one rule group's scenarios. Those reading only the group's own
    rules go to a file listing only those where that saves promtool work (`own_part`: they
    then skip the other groups' rules at every step); the rest, named after the groups
    they read too (`naming.with_stem`), list every group in `checked`."""
    stem = writer.stems[id(group)]
    own = own_part(group, checked, writer.step)
    if own is None:
        return {naming.test_path(stem): writer.file(group, checked)}
    rest = replace(group, scenarios=[s for s in group.scenarios if s not in own.scenarios])
    others = [writer.stems[id(g)] for g in checked if writer.stems[id(g)] != stem]
    return {naming.test_path(stem): writer.file(own, [group]),
            naming.test_path(naming.with_stem(stem, others)): writer.file(rest, checked)}


def _shared_files(writer: _Writer, members: list[Piece], checked: list[Piece],
                  gives: bool) -> tuple[dict[str, str], list[Lane]]:
    """The test files of rule groups sharing a file, and the lanes set aside for the host's
    file when it `gives`. The test groups reading every checked group stay in the shared
    file; each lane reading only some of them (`lanes_apart`) gets a file listing only
    those (promtool evaluates every listed rule at every step of every test group), unless
    it goes to the host."""
    stem = writer.stem(members)
    files: dict[str, str] = {}
    given: list[Lane] = []
    for lane in lanes_apart(members, checked):
        every = len(lane.reading) == len(checked)
        if gives and not every:
            given.append(lane)
            continue
        part = stem if every else _lane_stem(writer, lane.reading, members, stem)
        # the lane reading every group is packed with these rules already (`lanes_apart`)
        files[naming.test_path(part)] = writer.file(
            replace(members[0], scenarios=lane.scenarios), lane.reading, packed=every)
    return files, given


def _lane_stem(writer: _Writer, reading: list[Piece], members: list[Piece], stem: str) -> str:
    """The name of the file of a shared file's (named `stem`) lane reading only `reading`:
    after those groups, and `.apart` when one of them is not a member, since a file named
    after those groups alone could be another planned file's, or when they are exactly the
    members (the file also checks others' alerts): that name is the shared file's own."""
    part = writer.stem(reading)
    if part == stem or any(all(g is not m for m in members) for g in reading):
        return naming.apart_stem(part)
    return part


def _host_files(writer: _Writer, hosting: _Planned, given: Sequence[Lane]) -> dict[str, str]:
    """The host's test file: its group's scenarios beside the lanes `given` to it (`pack`
    shares test groups between them where their series and checks are apart), listing the
    rule groups the lanes read too, in rule order. Named after the host's group, then
    those it took in (`svc-7.runtime+http`): never a planned file's name, since a shared
    file's starts with the first of its several groups and the host's group is alone in
    its own."""
    listed = {id(g) for g in hosting.checked}
    brought = list({id(g): g for lane in given for g in lane.reading
                    if id(g) not in listed}.values())
    order = {key: i for i, key in enumerate(writer.stems)}
    rules = sorted([*hosting.checked, *brought], key=lambda g: order[id(g)])
    group = hosting.members[0]  # alone: see `rule_tests.host`
    scenarios = [*group.scenarios, *(s for lane in given for s in lane.scenarios)]
    return {naming.test_path(writer.stem([group, *brought])):
            writer.file(replace(group, scenarios=scenarios), rules)}


def _checked(members: list[Piece], groups: list[Piece], service: str) -> list[Piece]:
    """The groups `members`' tests check (see `_groups_checked`), in rule order."""
    needed = {id(g) for member in members for g in _groups_checked(member, groups, service)}
    return [g for g in groups if id(g) in needed]


def _groups_checked(group: Piece, groups: list[Piece], service: str) -> list[Piece]:
    """`group`, every group its rules read (`Piece.needs`: the SLO report reads the SLO
    group's rates) and every other group defining an alert or recording its scenarios
    check (a leak scenario also checks the static budget of the same count), in rule
    order."""
    alerts = {check.alert for s in group.scenarios for check in s.alert_checks}
    # one text to search: a record name (no line breaks) is in it iff in one of them
    exprs = "\n".join(check.expr for s in group.scenarios for check in s.expr_checks)
    needs = {f"{service}-{section}" for section in group.needs}
    return [g for g in groups if g is group or g.group in needs
            or any(a.name in alerts for a in g.alerts)
            or any(r.record in exprs for r in g.recordings if "\n" not in r.record)]


def _service_alerts(service: Service, spec_name: str, parts: Parts | None = None) -> Files:
    return service_alert_files(service, HEADER.format(spec=spec_name), parts)


def _shared_alerts(spec: Spec, spec_name: str) -> Files:
    """Alertmanager routing for every service (none for a rules-only spec)."""
    return alertmanager.files(spec, HEADER.format(spec=spec_name))


@dataclass(frozen=True)
class Output:
    """One output folder: the files each service has alone (rendered in parallel) and the
    files drawn from every service."""

    per_service: Callable[[Service, str, Parts | None], Files]
    shared: Callable[[Spec, str], Files]


def _service_dashboards(service: Service, spec_name: str, parts: Parts | None = None) -> Files:
    from watchkeeper.dashboards import build  # grafanalib: not for `--only alerts`

    return build.service_dashboard_files(service, spec_name, parts)  # type: ignore[return-value]


def _shared_dashboards(spec: Spec, spec_name: str) -> Files:
    from watchkeeper.dashboards import build

    return build.shared_dashboard_files(spec, spec_name)


# Each output folder and how its files are produced; `--only` picks among them.
OUTPUTS: dict[str, Output] = {
    "alerts": Output(_service_alerts, _shared_alerts),
    "dashboards": Output(_service_dashboards, _shared_dashboards),
}


def _emit(files: Files, sink: Sink | None) -> dict[str, str]:
    """Texts (pieces joined; no sink) or written, leaving path → sha256."""
    if sink is None:
        return {path: text if isinstance(text, str) else "".join(text)
                for path, text in files.items()}
    return {path: sink(path, text) for path, text in files.items()}


def _service_job(builds: Sequence[Callable[[Service, str, Parts | None], Files]],
                 spec_name: str,
                 sink: Sink | None, reuse: Reuse | None, memo: Memo | None,
                 service: Service) -> tuple[str | None, dict[str, str]]:
    """Every selected output of one service (the unit of work of a worker process), with
    the service's key when `reuse` is given: its files as recorded there when they are
    still in place (see build_cache), else built (or, with `memo`, had from a service
    rendered before that differs only by name, or from parts of services rendered before
    with the same inputs: see parts.Parts)."""
    key = None
    if reuse is not None:
        key = reuse.key(service)
        found = reuse.files(service, key)
        if found is not None:
            return key, found

    def render(service: Service, parts: Parts | None) -> dict[str, str]:
        return {path: text for build in builds for path, text in _emit(
            build(service, spec_name, parts), None).items()}

    files = render(service, None) if memo is None else memo.files(service, render)
    return key, files if sink is None else {path: sink(path, text)
                                            for path, text in files.items()}


def _shared_job(build: Callable[[Spec, str], Files], spec: Spec, spec_name: str,
                sink: Sink | None) -> dict[str, str]:
    return _emit(build(spec, spec_name), sink)


# Allocations between collections of the youngest generation in a worker (Python's
# default: 700). A worker builds and drops millions of small acyclic objects; collecting
# every 700 of them costs ~5% of its time and frees next to nothing.
WORKER_GC_THRESHOLD = 20_000

Job = Callable[[Service], tuple[str | None, dict[str, str]]]
# What a forked worker process works on: the job and every service, set once when it
# starts from what it inherited (see `_worker_start`). Tasks then name services by index:
# sent through the pool's queue, each service would be pickled in the parent and rebuilt
# in the worker (~0.15 ms each), and the job (with its reuse record) once per task. For
# the CLI the services are `load.ServicesOnDisk`: the worker reads its range from disk,
# the parent holds none of them.
_INHERITED: tuple[Job, Sequence[Service]] | None = None


def _worker_start(job: Job, services: Sequence[Service], parent: int | None = None) -> None:
    """Set up a forked worker: it keeps the job and services it inherited (initializer
    arguments are not pickled under fork); what it inherited (the spec, imported modules)
    lives as long as it does, so the collector stops scanning it; young objects are
    collected less often. It ends with its `parent` (see `_end_with`), and leaves SIGINT
    to it: Ctrl-C reaches a terminal's whole process group, and a worker's own
    KeyboardInterrupt, sent back as a task's result, would reach the parent a second time,
    in the middle of its clean-up (the parent cancels what is left and waits for the
    running tasks before it removes what they staged)."""
    global _INHERITED
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _INHERITED = (job, services)
    gc.freeze()
    gc.set_threshold(WORKER_GC_THRESHOLD, *gc.get_threshold()[1:])
    _end_with(parent)


PR_SET_PDEATHSIG = 1  # prctl(2): a signal this process gets when its parent ends


def _end_with(parent: int | None) -> None:
    """Have the kernel kill this worker when `parent`, the process that forked it, ends
    however it ends (SIGKILL, the OOM killer: no clean-up of its own). Else the worker
    waits for work forever (its pool's queue stays open in its siblings), with its memory
    and the output pipes a caller of the command reads to their end. Linux only."""
    if parent is None or not sys.platform.startswith("linux"):
        return
    import ctypes  # here: only workers pay for it

    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # it ended before the call above
        os._exit(1)


# What a task sends back: each service's (key, files), or, when they went on a shelf, how
# many services it did.
Done = list[tuple[str | None, dict[str, str]]] | int


def _run_range(bounds: tuple[int, int], shelf: Shelf | None = None) -> Done:
    """The job of services[start:stop], in a worker. With `shelf`, the services' files
    (path → sha256) and build-record entries go there, a run of each per task numbered by
    its first service, and only their count goes back: the main process then holds none
    of what its workers did, at any number of services (see `generate`)."""
    assert _INHERITED is not None, "runs in a worker started by _worker_start"
    job, services = _INHERITED
    chunk = services[bounds[0]:bounds[1]]
    done = [job(service) for service in chunk]
    if shelf is None:
        return done
    shelf.put(FILES, bounds[0], (pair for _, files in done for pair in files.items()))
    entries = [(service.name, entry_text(key, files))
               for service, (key, files) in zip(chunk, done, strict=True) if key is not None]
    if entries:
        shelf.put(ENTRIES, bounds[0], entries)
    return len(done)


def _ranges(count: int, workers: int) -> list[tuple[int, int]]:
    """Index ranges of the services, one per task, in order: at most CHUNK_MAX services
    (a task's results are in a worker at once), getting smaller towards the end
    (a share of what is left, at least CHUNK_MIN) so the workers finish together
    instead of one waiting on the other's last big task."""
    ranges, start = [], 0
    while start < count:
        size = max(CHUNK_MIN, min(CHUNK_MAX, (count - start) // (workers * 2)))
        ranges.append((start, min(count, start + size)))
        start += size
    return ranges


def _arriving_ranges(arriving: Arriving, start: int, stop: int,
                     workers: int) -> Iterator[tuple[int, int]]:
    """`_ranges(stop - start, workers)` over services[start:stop] (offset by `start`)
    while the services are still being read, each range once its services are read and
    on disk for the workers: whole ranges of CHUNK_MAX while enough services follow for
    `_ranges` to make them so, then, the count known (the spec read to its end, or
    `stop` reached), the rest as `_ranges` splits it. Reads on only as far as the next
    task needs; the first task, which forks the workers, as soon as its own services are
    read (whole, also where `_ranges` would make a spec of fewer than
    `CHUNK_MAX * workers * 2` services' first task smaller)."""
    at, ahead = start, CHUNK_MAX * workers * 2  # `_ranges` makes whole chunks this far
    while at + ahead <= stop and arriving.more(at + (ahead if at > start else CHUNK_MAX)):
        yield at, at + CHUNK_MAX
        at += CHUNK_MAX
    if not arriving.more(stop):
        stop = min(stop, len(arriving.services))
    yield from ((at + low, at + high) for low, high in _ranges(stop - at, workers))


def _workers(services: int) -> int:
    """Worker processes worth starting: one per usable core, none for small specs."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    if services < PARALLEL_MIN_SERVICES or cores < 2 or "fork" not in \
            multiprocessing.get_all_start_methods():
        return 0
    return cores


class Into(Protocol):
    """Where `generate` puts what it made, service by service (a dict, or `writers.Written`
    which keeps it on disk)."""

    def update(self, files: dict[str, str], /) -> None: ...


@runtime_checkable
class Shelved(Protocol):
    """An `Into` whose worker processes' files are put on a shelf (`writers.Written`):
    runs of (path, sha256) of kind `writers.FILES`, merged when it is read."""

    def update(self, files: dict[str, str], /) -> None: ...

    def shelf(self) -> Shelf: ...


IntoT = TypeVar("IntoT", bound=Into)


class Arriving(Protocol):
    """A spec still being read (`load.Loading`): its services as far as read (on disk, so
    that worker processes forked before the last ones were read can read them), more of
    them on demand, the whole spec at the end."""

    services: Sequence[Service]

    def more(self, count: int) -> bool:
        """Whether `count` services are read (reading on until they are)."""
        ...

    def spec(self) -> Spec:
        """The whole spec, read to its end (raises load.SpecError for a bad one)."""
        ...


class Reread(Exception):
    """The services read so far are not the spec's after all (its text was unusual, and
    read again the usual way made other services of it, see `load.Loading.spec`): what was
    rendered from them must go (the caller's staging folder too); generate `spec` again."""

    def __init__(self, spec: Spec) -> None:
        super().__init__("the spec was read again")
        self.spec = spec


@overload
def generate(spec: Spec | Arriving, spec_name: str, only: Sequence[str] | None = None,
             sink: Sink | None = None, reuse: Reuse | None = None, *,
             memo: bool = True) -> dict[str, str]: ...
@overload
def generate(spec: Spec | Arriving, spec_name: str, only: Sequence[str] | None = None,
             sink: Sink | None = None, reuse: Reuse | None = None, *,
             into: IntoT, memo: bool = True) -> IntoT: ...
def generate(spec: Spec | Arriving, spec_name: str, only: Sequence[str] | None = None,
             sink: Sink | None = None, reuse: Reuse | None = None,
             into: Into | None = None, memo: bool = True) -> Into:
    """Every file of the selected output folders: path → text, or path → sha256 of what
    `sink` wrote; put into `into` as they come when given (and `into` returned), else in a
    new dict.

    Each service's files depend on that service alone, so large specs are split across
    worker processes (forked: nothing is re-imported), one pool for every output; the
    files drawn from every service (the overview dashboard, routing) are built in this
    process while the workers render the services (from the names alone: services kept
    on disk, see load.ServicesOnDisk, are not read back here). With a sink the workers write the
    files themselves and send back only digests, so nothing big crosses processes.

    With `reuse` (and a sink), services whose inputs are unchanged since the run recorded
    there are not built again (see build_cache); what each service has now is put in
    `reuse.built`.

    Services that differ from one rendered before only by their name are not built again
    (`memo.Memo`, one per run; `memo=False` builds every service: the same files).

    `spec` may still be being read (`Arriving`): the workers then start on its first
    services while this process reads the rest (the read was a third of a cold run's
    serial time). Raises `Reread` when the services read so far turn out not to be the
    spec's (see `load.Loading.spec`), SpecError for a bad spec.
    """
    assert reuse is None or sink is not None, "reused files have no text to return"
    outputs = [output for folder, output in OUTPUTS.items() if only is None or folder in only]
    if only is None or "dashboards" in only:
        import watchkeeper.dashboards.build  # noqa: F401 - once, before workers are forked
    job = functools.partial(_service_job, [o.per_service for o in outputs], spec_name, sink,
                            reuse, Memo(spec_name) if memo else None)
    arriving = None
    if not isinstance(spec, Spec):  # being read: a pool starts on the first services
        if spec.more(PARALLEL_MIN_SERVICES) and _workers(PARALLEL_MIN_SERVICES):
            arriving = spec
        else:  # a small spec (or one core): read whole first
            spec = spec.spec()
    services = arriving.services if arriving is not None else spec.services
    workers = _workers(len(services))
    result: Into = {} if into is None else into
    if not workers:
        assert isinstance(spec, Spec)
        for output in outputs:
            result.update(_shared_job(output.shared, spec, spec_name, sink))
        _collect(service_names(spec.services), map(job, spec.services), result, reuse)
        return result
    # workers put their services' digests and record entries on a shelf when `result`
    # keeps one: nothing of them is sent here
    shelf = result.shelf() if sink is not None and isinstance(result, Shelved) else None
    if shelf is not None and reuse is not None:
        reuse.built.shelve(shelf)
    recycled = _Recycled(job, services, workers, arriving, shelf=shelf)
    with recycled as parts:
        if arriving is not None:  # the rest read here while the workers render the first
            spec = arriving.spec()
            if spec.services is not services:
                raise Reread(spec)
            recycled.arrived()
        assert isinstance(spec, Spec)
        names = service_names(spec.services)
        # The files drawn from every service are built here while the workers render the
        # services (they need only the names: stored services are not read back here).
        for output in outputs:
            result.update(_shared_job(output.shared, spec, spec_name, sink))
        # merged as they come: no list of every service's part
        _collect(names, parts, result, reuse)
    return result


# Services rendered by one set of worker processes; the next ones go to freshly forked
# workers. A worker's resident memory creeps while it renders (its live objects do not:
# the allocator's arenas fragment as the caches fill and clear), so replacing the workers
# keeps a run's peak that of this many services whatever the spec's size. Forking a pool
# costs ~20-40 ms; a spec of at most this many services uses one pool, as before.
SERVICES_PER_POOL = 1000


class _Recycled:
    """The results of `_run_range` over every service, in order, from one pool of forked
    workers per `SERVICES_PER_POOL` services, one pool after the other (a new pool is
    forked once the last one's workers have exited: forking while another pool's threads
    run risks a child inheriting a held lock). The first pool starts on entering."""

    def __init__(self, job: Job, services: Sequence[Service], workers: int,
                 arriving: Arriving | None = None, *, shelf: Shelf | None = None) -> None:
        self._initargs = (job, services, os.getpid())
        self._shelf = shelf  # where tasks put what they did (see `_run_range`)
        self._workers = workers
        self._arriving = arriving  # services still being read: the first pool starts on them
        count = SERVICES_PER_POOL if arriving is not None else len(services)
        self._slices = deque((start, min(count, start + SERVICES_PER_POOL))
                             for start in range(0, count, SERVICES_PER_POOL))
        self._pool: ProcessPoolExecutor | None = None
        self._others: set[multiprocessing.process.BaseProcess] = set()  # not our workers

    def arrived(self) -> None:
        """Every service is read (`arriving.spec()` returned): the pools past the first
        one's slice (which ends where the services do) are known."""
        assert self._arriving is not None
        count = len(self._arriving.services)
        self._slices.extend((start, min(count, start + SERVICES_PER_POOL))
                            for start in range(SERVICES_PER_POOL, count, SERVICES_PER_POOL))

    def __enter__(self) -> Iterator[Part]:
        """The results to come. Entering starts the first pool and submits its first tasks,
        reading the spec on as far as they need (see `_arriving_ranges`): a worker may
        finish a task meanwhile. A failure (Ctrl-C) there ends the pool as one in the
        block would: `with` calls `__exit__` only once `__enter__` has returned, and a pool
        left running writes into staging folders its caller is removing."""
        self._others = set(multiprocessing.active_children())
        try:
            return self._results(self._start())
        except BaseException as error:
            self.__exit__(type(error))
            raise

    def __exit__(self, kind: object, *_: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=kind is not None)
            self._pool = None
        if kind is not None:
            self._end_workers()
            if self._shelf is not None:
                self._shelf.close()  # a failed run commits nothing: what its tasks put goes

    def _end_workers(self) -> None:
        """After a failure, no worker of ours outlives this run's clean-up (its caller
        removes the staging folders next): `shutdown` has waited for the running tasks, so
        none should be left; one that is (Python 3.11's `Thread.join` taken for done when
        interrupted, say) is killed rather than left writing. Other processes this one
        started (an embedding program's) are not ours to end."""
        for process in multiprocessing.active_children():
            if process not in self._others:
                process.kill()
                process.join()

    def _start(self) -> Iterator[Done]:
        """A new pool for the next slice of services, its first tasks submitted."""
        start, stop = self._slices.popleft()
        self._pool = ProcessPoolExecutor(
            self._workers, mp_context=multiprocessing.get_context("fork"),
            initializer=_worker_start, initargs=self._initargs)
        ranges: Iterable[tuple[int, int]] = [
            (start + low, start + high) for low, high in _ranges(stop - start, self._workers)]
        if self._arriving is not None and start == 0:  # forked at the first task, once read
            ranges = _arriving_ranges(self._arriving, start, stop, self._workers)
        return _in_order(self._pool, ranges, self._workers * TASKS_AHEAD, self._shelf)

    def _results(self, parts: Iterator[Done]) -> Iterator[Part]:
        """Each service's (key, files), or how many services a task put on the shelf, in
        order, pool after pool."""
        while True:
            for done in parts:
                if isinstance(done, int):
                    yield done
                else:
                    yield from done
            assert self._pool is not None
            self._pool.shutdown()
            self._pool = None
            if not self._slices:
                return
            parts = self._start()


# Tasks submitted to the pool per worker ahead of the one whose results are awaited: enough
# that no worker waits for work, few enough that the pool's bookkeeping (a future and work
# item per task, results not yet taken) stays the same for any number of services.
TASKS_AHEAD = 4


def _in_order(pool: ProcessPoolExecutor, ranges: Iterable[tuple[int, int]],
              ahead: int, shelf: Shelf | None = None) -> Iterator[Done]:
    """`_run_range` of each range (with `shelf`), in order, with at most `ahead` tasks in
    the pool at a time; the first ones are submitted at once (so the workers start before
    the caller takes the first result)."""
    tasks = iter(ranges)
    pending = deque(pool.submit(_run_range, bounds, shelf)
                    for bounds in itertools.islice(tasks, ahead))

    def results() -> Iterator[Done]:
        while pending:
            done = pending.popleft().result()
            for bounds in itertools.islice(tasks, 1):
                pending.append(pool.submit(_run_range, bounds, shelf))
            yield done

    return results()


# What the parent collects per service: its (key, files), or a number of services whose
# files and record entries a worker put on the shelf (see `_run_range`).
Part = tuple[str | None, dict[str, str]] | int


def _collect(names: Collection[str], parts: Iterable[Part], result: Into,
             reuse: Reuse | None) -> None:
    """Each service's files into `result` and its record entry into `reuse.built`, in
    spec order (`names`, read as they are needed: they may be on disk); a number stands
    for that many services whose workers put both on the shelf. Every service exactly
    once."""
    left = iter(names)
    for part in parts:
        if isinstance(part, int):
            if sum(1 for _ in itertools.islice(left, part)) != part:
                raise RuntimeError("more services generated than the spec has")
            continue
        key, files = part
        name = next(left, None)
        if name is None:
            raise RuntimeError("more services generated than the spec has")
        result.update(files)
        if reuse is not None and key is not None:
            reuse.built[name] = (key, files)
    if next(left, None) is not None:
        raise RuntimeError("fewer services generated than the spec has")


def alert_files(spec: Spec, spec_name: str) -> dict[str, str]:
    """`alerts/<service>.<section>.rules.yml` and `alerts/tests/<service>.<section>.test.yml`
    per rule group (see `service_alert_files`), and the Alertmanager routing, in memory."""
    return generate(spec, spec_name, ("alerts",))
