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

The memo belongs to one run (`generate` makes one; a forked worker has its own copy),
holds at most `MAX_ENTRIES` services' texts (memory stays flat in the number of services),
and stops looking once a run's services turn out not to repeat (`PROBE`): a spec whose
services all differ then pays only for those first look-ups.
"""

from __future__ import annotations

import dataclasses
import io
import pickle
import re
from collections import OrderedDict
from collections.abc import Callable

from watchkeeper.model import Service
from watchkeeper.naming import UID_MAX, UID_PREFIX
from watchkeeper.writers import value_text

# A name no service has (`z` occurs once, so two copies cannot overlap and text around a
# copy cannot complete one) and that reads as the same kind of YAML and PromQL text as any
# name `abstract` accepts.
PLACEHOLDER = "zqxjvkwmemo"
MAX_ENTRIES = 16
# The spec's pattern for service names (`spec.SERVICE_NAME`; not imported: pydantic).
_NAME = re.compile(r"^[a-z][a-z0-9-]*$")
# Look-ups after which a memo whose hits are fewer than one in `PROBE_HITS` stops looking.
PROBE, PROBE_HITS = 64, 8

Render = Callable[[Service], dict[str, str]]


def _dump(service: Service) -> bytes:
    """The service's pickle without shared references (`fast`), so equal services give
    equal bytes however their parts happen to be shared in memory, and each string is
    written out where it occurs."""
    out = io.BytesIO()
    pickler = pickle.Pickler(out, pickle.HIGHEST_PROTOCOL)
    pickler.fast = True
    pickler.dump(service)
    return out.getvalue()


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
    # every string of the service is in its pickle as written (see `_dump`): the name
    # must be nowhere else, not even inside another text
    try:
        dumped = _dump(service)
    except (pickle.PicklingError, TypeError, ValueError, AttributeError):
        return None  # a service made in memory with parts no pickle holds: built directly
    if dumped.count(name.encode()) != expected or PLACEHOLDER.encode() in dumped:
        return None
    return dataclasses.replace(service, name=PLACEHOLDER,
                               selector=dataclasses.replace(selector, matchers=matchers,
                                                            example=example))


class Memo:
    """The files of services already rendered in this run, by their budgets without their
    name (the pickle of `abstract`), as texts with `PLACEHOLDER` for the name."""

    def __init__(self, spec_name: str, max_entries: int = MAX_ENTRIES) -> None:
        # the spec's file name is in every file's header: it must not hold the placeholder
        self.on = PLACEHOLDER not in spec_name
        self.max_entries = max_entries
        self._texts: OrderedDict[bytes, dict[str, str]] = OrderedDict()
        self.hits = self.misses = 0

    def files(self, service: Service, render: Render) -> dict[str, str]:
        """`render(service)`, or the same files from a service rendered before with the
        same budgets."""
        shape = abstract(service) if self.on else None
        if shape is None:
            return render(service)
        key = _dump(shape)
        texts = self._texts.get(key)
        if texts is None:
            self.misses += 1
            try:
                texts = render(shape)
            except Exception:  # raised again, naming the service itself
                return render(service)
            self._texts[key] = texts
            if len(self._texts) > self.max_entries:
                self._texts.popitem(last=False)
            self._give_up()
        else:
            self.hits += 1
            self._texts.move_to_end(key)
        name = service.name
        return {path.replace(PLACEHOLDER, name): text.replace(PLACEHOLDER, name)
                for path, text in texts.items()}

    def _give_up(self) -> None:
        """Stop looking (and drop what is held) once `PROBE` look-ups found services that do
        not repeat: a miss costs the key and the copy only, but nothing comes back."""
        if self.hits + self.misses >= PROBE and self.hits * PROBE_HITS < self.misses:
            self.on = False
            self._texts.clear()
