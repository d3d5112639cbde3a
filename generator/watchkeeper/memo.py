"""Services that differ only by name are rendered once per run.

In a large spec many services share every budget (profiles and presets exist for that) and
differ by name alone; each of their files is then the same text with another name in it.
`Memo` renders such a service once under a placeholder name (`PLACEHOLDER`) and gives every
other service with the same budgets that text with its own name put in.

This is exact only where the output is built from the name by concatenation: the name is
never hashed, re-cased, escaped, compared or measured. `abstract` therefore accepts a
service only when that holds for it (see there), and everything else is built directly:

- the name is plain text for YAML and PromQL: `[a-z][a-z0-9-]*` (the spec's pattern), not a
  word YAML reads as something else (`yes`, `null`, `nan`, ...), and short enough that its
  dashboard uid is ``wk-<name>`` and not shortened with a hash of the name;
- the name occurs in the service nowhere but its `name` and as a whole value of its
  selector (``job: <name>`` is usual): a metric, label or budget whose text merely contains
  the name would be changed by putting the name back;
- the placeholder occurs nowhere in the service or the spec's file name.

The memo belongs to one run (`generate` makes one; a forked worker has its own copy,
empty when the worker starts) and holds at most `MAX_CHARS` characters of keys and texts (a
constant: memory stays flat in the number of services). When full it makes room by dropping
the entry with the fewest hits, of those the newest (never the one just put in): what is
held stays while newcomers take turns in what is left. Dropping the least recently used
one instead gains nothing when services take more sets of budgets in turn than the memo
holds (each is dropped just before it comes round again); this way the entries held from the
first round hit in every later one, and services grouped by budgets still hit while their
group lasts. It stops looking once a run's services turn out not to repeat (`PROBE`
look-ups, more than the sets of budgets that turn up in a usual worker's services before the
first repeats): a spec whose services all differ then pays only for those look-ups (~0.1 ms
each against ~7 ms to build a service).

Services whose budgets differ still share parts (a signal's pieces, a rule group, their
texts): `parts.Parts`, one per memo, keeps those; services are rendered under the
placeholder for it too, also once whole services are no longer looked up, until parts stop
repeating as well (`Parts.on`): then services are rendered directly.
"""

from __future__ import annotations

import dataclasses
import pickle
import re
from collections.abc import Callable

from watchkeeper.model import Service
from watchkeeper.naming import UID_MAX, UID_PREFIX
from watchkeeper.parts import Parts, dump
from watchkeeper.writers import value_text

# A name no service has (`z` occurs once, so two copies cannot overlap and text around a
# copy cannot complete one) and that reads as the same kind of YAML and PromQL text as any
# name `abstract` accepts.
PLACEHOLDER = "zqxjvkwmemo"
# Characters of keys and texts a memo holds (per worker): 4 Mi, ~4 MiB of ASCII strings,
# ~37 of the benchmark's services (~110,000 characters each) and hundreds of small ones;
# a few MiB on a worker's ~25-30 MiB, whatever the number of services.
MAX_CHARS = 4 * 2**20
# The spec's pattern for service names (`spec.SERVICE_NAME`; not imported: pydantic).
_NAME = re.compile(r"^[a-z][a-z0-9-]*$")
# Look-ups after which a memo whose hits are fewer than one in `PROBE_HITS` misses stops
# looking.
PROBE, PROBE_HITS = 256, 8

# Files of a service, from the parts of services rendered before where given (`Parts`).
Render = Callable[[Service, Parts | None], dict[str, str]]


def _name_ok(name: str) -> bool:
    return (_NAME.match(name) is not None and len(UID_PREFIX + name) <= UID_MAX
            and value_text(name, "") == name)


def abstract(service: Service) -> Service | None:
    """`service` with `PLACEHOLDER` for its name (as its name and wherever a selector value
    is exactly its name), or None when its files cannot be had from the placeholder's by
    putting the name in (see the module's docstring)."""
    name = service.name
    if not _name_ok(name):
        return None
    selector = service.selector
    matchers = tuple(dataclasses.replace(m, value=PLACEHOLDER) if m.value == name else m
                     for m in selector.matchers)
    example = {k: PLACEHOLDER if v == name else v for k, v in selector.example.items()}
    expected = 1 + sum(m.value == name for m in selector.matchers) + sum(
        v == name for v in selector.example.values())
    # every string of the service is in its pickle as written (see `parts.dump`): the name
    # must be nowhere else, not even inside another text
    try:
        dumped = dump(service)
    except (pickle.PicklingError, TypeError, ValueError, AttributeError):
        return None  # a service made in memory with parts no pickle holds: built directly
    if dumped.count(name.encode()) != expected or PLACEHOLDER.encode() in dumped:
        return None
    return dataclasses.replace(service, name=PLACEHOLDER,
                               selector=dataclasses.replace(selector, matchers=matchers,
                                                            example=example))


@dataclasses.dataclass
class _Entry:
    texts: dict[str, str]
    chars: int
    order: int  # when it was put in
    hits: int = 0


class Memo:
    """The files of services already rendered in this run, by their budgets without their
    name (the pickle of `abstract`), as texts with `PLACEHOLDER` for the name."""

    def __init__(self, spec_name: str, max_chars: int = MAX_CHARS) -> None:
        # the spec's file name is in every file's header: it must not hold the placeholder
        self.usable = self.on = PLACEHOLDER not in spec_name
        # signals' pieces and rule groups of services with other budgets (parts.py); kept
        # when whole services turn out not to repeat
        self.parts = Parts()
        self.max_chars = max_chars
        self.chars = 0  # of keys and texts held
        self._held: dict[bytes, _Entry] = {}
        self.hits = self.misses = 0

    def files(self, service: Service, render: Render) -> dict[str, str]:
        """`render(service, None)`, or the same files from a service rendered before with
        the same budgets. Rendered under the placeholder wherever `abstract` allows, also
        once whole services stopped being looked up: `render` then reuses parts of
        services with other budgets (`self.parts`, while they repeat), which must not
        carry a name. A service `abstract` refuses gets no parts: they are keyed by all
        of the service but its budgets, its name too, so no other service could take
        them, and their misses would count against the parts of the others."""
        shape = abstract(service) if self.usable and (self.on or self.parts.on) else None
        if shape is None:
            return render(service, None)
        parts = self.parts if self.parts.on else None
        looked_up = self.on  # whole services still looked up (else only parts are reused)
        key = dump(shape) if looked_up else b""
        entry = self._held.get(key) if looked_up else None
        if entry is not None:
            self.hits += 1
            entry.hits += 1
            texts = entry.texts
        else:
            self.misses += 1 if looked_up else 0
            try:
                texts = render(shape, parts)
            except Exception:  # raised again, naming the service itself
                return render(service, parts)
            if looked_up:
                self._hold(key, texts)
                self._give_up()
        name = service.name
        return {path.replace(PLACEHOLDER, name): text.replace(PLACEHOLDER, name)
                for path, text in texts.items()}

    def _hold(self, key: bytes, texts: dict[str, str]) -> None:
        """Put `texts` in, first dropping the entries with the fewest hits (of those the
        newest) until they fit; texts bigger than the whole memo are not held."""
        chars = len(key) + sum(len(path) + len(text) for path, text in texts.items())
        if chars > self.max_chars:
            return
        while self.chars + chars > self.max_chars:
            victim = min(self._held, key=lambda k: (self._held[k].hits, -self._held[k].order))
            self.chars -= self._held.pop(victim).chars
        self._held[key] = _Entry(texts, chars, self.misses)
        self.chars += chars

    def _give_up(self) -> None:
        """Stop looking (and drop what is held) once `PROBE` look-ups found services that do
        not repeat: a miss costs the key and the copy only, but nothing comes back."""
        if self.hits + self.misses >= PROBE and self.hits * PROBE_HITS < self.misses:
            self.on = False
            self._held.clear()
            self.chars = 0
