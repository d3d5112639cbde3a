"""Parts of services that repeat are built once per run, even when the services differ.

`memo.Memo` reuses a whole service's files only when every budget repeats. Specs whose
services each combine a few presets per signal (latency budgets from one of five, error
ratios from one of three, ...) rarely repeat whole services but repeat each signal's part
often. `Parts` keeps, per run, what one signal built and what one rule group assembled, and
gives them again to a later service with the same inputs; `rules.py` renders a rule group
held here once. Services reach it named `memo.PLACEHOLDER` (see `memo.Memo.files`), so a
part built for one service is the part of the next with the same inputs; the name is put
in the texts at the end, as for whole services.

Inputs are explicit. A signal's part is keyed by:

- the signal, and the value of exactly the budgets it declares (`Signal.keys` and
  `Signal.reads`; `reads` None: every budget);
- everything about the service that is not a budget (name, selector, profile, labels,
  URLs, windows, `for`, settings): the pickle of the service without its budgets;
- what is drawn from every budget and that builders may use: the test steps
  (`common.test_step`, `common.leak_test_step`) and the metrics always exposed
  (`absent.always_exposed`).

The builder gets a view of the service whose budgets are a `Declared` mapping: reading a
budget outside the declared ones, or walking all of them, raises `UndeclaredRead`, so a
builder that starts reading something new fails every test instead of giving a silently
wrong file from a part built for other budgets. The derived facts come with the view
(`Service.derived`), computed from the whole service.

A rule group is keyed by the identity of the signals' pieces it is assembled from (which,
held here, stand for their inputs) and by the rest of the service as above; its joint
scenarios (`signals.joint_scenarios`) see the union of its signals' declared budgets.

Bounded: every table holds at most `MAX_ENTRIES` entries whose input pickle is at most
`MAX_KEY` bytes (a builder's output grows with its input, so each entry is bounded too),
whatever the number of services; the entry with the fewest hits makes room. A table whose
look-ups turn out not to repeat (`PROBE`) stops looking, so a spec where every signal's
budgets differ pays for `PROBE` keys per signal only. One `Parts` per run, never shared
between runs (no global state).
"""

from __future__ import annotations

import dataclasses
import io
import pickle
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from watchkeeper.model import Chart, Derived, Piece, Service

T = TypeVar("T")

# Entries per table (one table per signal, one for rule groups, one for rendered texts).
MAX_ENTRIES = 128
# Texts of test series and checks held (a few hundred characters each, see `Parts.leaf`).
MAX_LEAVES = 8192
# Inputs (pickled budgets read, bytes) above this are built each time and not held.
MAX_KEY = 16 * 1024
# Look-ups after which a table with fewer than one hit in `PROBE_HITS` stops looking.
PROBE, PROBE_HITS = 64, 4


class UndeclaredRead(AssertionError):
    """A signal's builder read a budget it does not declare (see the module's docstring)."""


def dump(value: object) -> bytes:
    """`value`'s pickle without shared references (`fast`): equal values give equal bytes
    however their parts happen to be shared in memory, each string written out where it
    occurs (`memo` relies on that to find a service's name in its pickle)."""
    out = io.BytesIO()
    pickler = pickle.Pickler(out, pickle.HIGHEST_PROTOCOL)
    pickler.fast = True
    pickler.dump(value)
    return out.getvalue()


class Declared(Mapping[str, Any]):
    """A service's budgets as one signal may read them: only the `paths` it declares
    (None: every one); anything else raises `UndeclaredRead`. What is drawn from every
    budget comes beside it, in the view's `Service.derived`."""

    def __init__(self, reader: str, budgets: Mapping[str, Any],
                 paths: frozenset[str] | None) -> None:
        self._reader, self._budgets, self._paths = reader, budgets, paths

    def _allowed(self, path: str) -> None:
        if self._paths is not None and path not in self._paths:
            raise UndeclaredRead(
                f"{self._reader} read the budget {path!r} without declaring it "
                f"(Signal.keys / Signal.reads): parts built for other budgets would be reused")

    def __getitem__(self, path: str) -> Any:
        self._allowed(path)
        return self._budgets[path]

    def get(self, path: str, default: Any = None) -> Any:
        self._allowed(path)
        return self._budgets.get(path, default)

    def __iter__(self) -> Iterator[str]:
        if self._paths is not None:
            raise UndeclaredRead(f"{self._reader} walked every budget without declaring "
                                 f"them (Signal.reads = None)")
        return iter(self._budgets)

    def __len__(self) -> int:
        if self._paths is not None:
            raise UndeclaredRead(f"{self._reader} counted the budgets without declaring them")
        return len(self._budgets)


@dataclasses.dataclass
class _Entry:
    value: Any
    hits: int = 0


class _Table:
    """Values by key, bounded (`size`, by default `MAX_ENTRIES`: when full, the half with
    the fewest hits, of equals the newer, makes room, in one pass: what was held first and
    hits stays), giving up once `probe` look-ups (by default `PROBE`) found too few
    repeats."""

    def __init__(self, size: int = MAX_ENTRIES, probe: int = PROBE) -> None:
        self.size, self.probe, self.on = size, probe, True
        self.hits = self.misses = 0
        self._held: dict[Any, _Entry] = {}

    def get(self, key: Any) -> Any:
        entry = self._held.get(key)
        if entry is None:
            self.misses += 1
            if self.hits + self.misses >= self.probe and self.hits * PROBE_HITS < self.misses:
                self.on = False
                self._held.clear()
            return None
        self.hits += 1
        entry.hits += 1
        return entry.value

    def put(self, key: Any, value: Any) -> None:
        if not self.on:
            return
        if len(self._held) >= self.size:
            # sorted is stable: of equal hits the older (put in earlier) stay
            kept = sorted(self._held.items(), key=lambda item: -item[1].hits)[:self.size // 2]
            self._held = dict(kept)
        self._held[key] = _Entry(value)


class Parts:
    """One run's signal parts, rule groups and rendered rule texts (see the module)."""

    def __init__(self) -> None:
        self._signals: dict[str, _Table] = {}
        self._groups = _Table()
        self._same: dict[str, _Table] = {}
        self._last: Seen | None = None
        self._paths: dict[int, tuple[Any, frozenset[str] | None]] = {}
        self._leaves: dict[int, tuple[Any, str]] = {}
        self._leaves_on, self._leaf_hits, self._leaf_misses = True, 0, 0

    def paths(self, signal: Any) -> frozenset[str] | None:
        """`_paths(signal)`, once per signal object (held, so its id stands for it)."""
        known = self._paths.get(id(signal))
        if known is None or known[0] is not signal:
            known = self._paths[id(signal)] = (signal, _paths(signal))
        return known[1]

    @property
    def on(self) -> bool:
        """Whether parts are still worth looking up: while rule groups repeat (a group is
        assembled from every signal of its section, so when groups stop repeating the
        signals' parts mostly do too, and looking them up would only cost)."""
        return self._groups.on

    def service(self, service: Service) -> Seen:
        """The look-ups for one service's parts (its key without budgets made once; the
        last service's kept for its other outputs)."""
        if self._last is None or self._last.service is not service:
            self._last = Seen(self, service)
        return self._last

    def same(self, kind: str, objects: tuple[object, ...], extra: Hashable,
             make: Callable[[], T], size: int = MAX_ENTRIES, probe: int = PROBE) -> T:
        """`make()`, which depends on `objects` (held here: rule groups, pieces, charts) and
        `extra` alone, made once while they are held: a rule group's rule file, its
        estimate, the test files of a set of groups, a chart's panel text at one place.
        The entry keeps `objects` alive, so their ids in the key stand for them. `size`
        and `probe` (the table's bound and give-up, see `_Table`) are those of the kind's
        first use: a kind looked up many times per service, whose first look-ups are all
        new (a panel per chart), needs more of both than a kind looked up once."""
        table = self._same.get(kind)
        if table is None:
            table = self._same[kind] = _Table(size, probe)
        if not table.on:
            return make()
        key = (tuple(map(id, objects)), extra)
        held = table.get(key)
        if held is not None and all(a is b for a, b in zip(held[0], objects, strict=True)):
            return held[1]
        made = make()
        table.put(key, (objects, made))
        return made

    def looks_up(self, kind: str) -> bool:
        """Whether `same` still looks up `kind` (not yet used, or its table did not give up)."""
        table = self._same.get(kind)
        return table is None or table.on

    def leaf(self, thing: T, make: Callable[[T], str]) -> str:
        """`make(thing)` (a test file's series or check, see `rule_tests.Leaf`), or its
        text made before for this same object: one held in a part stands for every service
        with that part's inputs. At most `MAX_LEAVES` are kept (all dropped when full);
        each entry keeps its object alive, so its id stands for it."""
        if not self._leaves_on:
            return make(thing)
        held = self._leaves.get(id(thing))
        if held is not None and held[0] is thing:
            self._leaf_hits += 1
            return held[1]
        text = make(thing)
        self._leaf_misses += 1
        if len(self._leaves) >= MAX_LEAVES:
            self._leaves.clear()
        if self._leaf_hits * PROBE_HITS < self._leaf_misses and \
                self._leaf_hits + self._leaf_misses >= PROBE * 64:
            self._leaves_on = False  # texts are not met again: stop looking
            self._leaves.clear()
            return text
        self._leaves[id(thing)] = (thing, text)
        return text


class Seen:
    """One service as `Parts` sees it: its key without budgets, and the facts derived from
    every budget."""

    def __init__(self, parts: Parts, service: Service) -> None:
        from watchkeeper.signals import SIGNALS
        from watchkeeper.signals.common import leak_test_step, test_step

        self._parts, self.service = parts, service
        self._reads: dict[str, bytes | None] = {}
        try:
            self._base: bytes | None = dump(dataclasses.replace(service, budgets={}))
        except (pickle.PicklingError, TypeError, ValueError, AttributeError):
            self._base = None  # parts no pickle holds: everything built directly
        steps = Derived(test_step(service), leak_test_step(service), None)
        exposed = tuple(dict.fromkeys(
            metric for signal in SIGNALS
            for metric in signal.exposed(self.view(signal.name, parts.paths(signal), steps))))
        self.facts = dataclasses.replace(steps, exposed=exposed)

    def view(self, reader: str, paths: frozenset[str] | None,
             facts: Derived | None = None) -> Service:
        """The service with only `paths` of its budgets readable (see `Declared`) and what
        is drawn from all of them (`facts`, by default the whole service's)."""
        view = object.__new__(Service)  # `replace` without __init__: views are many
        view.__dict__.update(self.service.__dict__,
                             budgets=Declared(reader, self.service.budgets, paths),
                             derived=facts or self.facts)
        return view

    def build(self, signal: Any) -> list[Piece]:
        """`signal.build` of the service, or the pieces built for an earlier service with
        the same inputs (never to be changed: they are shared)."""
        return self._made(signal, "build")

    def charts(self, signal: Any) -> list[Chart]:
        """`signal.charts` of the service, likewise."""
        return self._made(signal, "charts")

    def _made(self, signal: Any, what: str) -> Any:
        paths = self._parts.paths(signal)
        make = getattr(signal, what)
        table = self._parts._signals.setdefault(f"{signal.name} {what}", _Table())
        read = self._read(signal.name, paths) if self._base is not None and table.on else None
        if read is None or len(read) > MAX_KEY:
            return make(self.view(f"signal {signal.name!r}", paths))
        key = (self._base, self.facts, read)
        pieces = table.get(key)
        if pieces is None:
            pieces = make(self.view(f"signal {signal.name!r}", paths))
            table.put(key, pieces)
        return pieces

    def _read(self, name: str, paths: frozenset[str] | None) -> bytes | None:
        """The pickle of the budgets a signal declares (once per service and signal), or
        None when no pickle holds them."""
        if name not in self._reads:
            budgets = self.service.budgets
            chosen = sorted(budgets) if paths is None else sorted(paths)
            try:
                self._reads[name] = dump(tuple((path, budgets.get(path)) for path in chosen))
            except (pickle.PicklingError, TypeError, ValueError, AttributeError):
                self._reads[name] = None
        return self._reads[name]

    def group(self, section: str, members: Sequence[tuple[Any, Piece]],
              assemble: Callable[[Service], Piece]) -> Piece:
        """`assemble(view)`: the rule group `section` from its signals' pieces (`members`,
        in order), with a view of the union of those signals' budgets, or the group
        assembled before from the same pieces (never to be changed: it is shared)."""
        table = self._parts._groups
        if self._base is None or not table.on:
            return assemble(self._group_view(section, members))
        key = (section, self._base, self.facts, tuple(id(piece) for _, piece in members))
        held = table.get(key)
        if held is not None and all(a is b for a, (_, b) in zip(held[0], members, strict=True)):
            return held[1]
        group = assemble(self._group_view(section, members))
        # the entry keeps the pieces alive, so their ids in the key stand for them
        table.put(key, (tuple(piece for _, piece in members), group))
        return group

    def _group_view(self, section: str, members: Sequence[tuple[Any, Piece]]) -> Service:
        signals = {signal.name: signal for signal, _ in members}
        wanted = [self._parts.paths(signal) for signal in signals.values()]
        paths = None if None in wanted else frozenset().union(*filter(None, wanted))
        return self.view(f"rule group {section!r} of signals {', '.join(signals)}", paths)


def _paths(signal: Any) -> frozenset[str] | None:
    """The budgets `signal` declares it reads: its keys and `reads` (None: every one)."""
    if signal.reads is None:
        return None
    return frozenset(key.path for key in signal.keys) | frozenset(signal.reads)
