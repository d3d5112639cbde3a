"""Split a spec's rule files across N rule evaluators by service (`generate --shard I/N`).

Each service goes to one shard, chosen by rendezvous (highest random weight) hashing of its
name: the assignment depends only on the service's own name and N, never on the order of the
spec or on the other services, so adding or removing a service moves no other service, and
going from N to N+1 shards moves only the ~1/(N+1) services the new shard wins. Files shared
by every evaluator (alerts/alertmanager.yml, dashboards) are kept whole in every shard, so the
union of the N shards' files is exactly the unsharded output. No I/O here.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass

from watchkeeper import naming

_SPEC = re.compile(r"^(\d+)/(\d+)$")


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (1-based) of ``count``."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse(text: str) -> Shard:
    """``I/N`` with 1 ≤ I ≤ N; ValueError with a message naming the problem otherwise."""
    match = _SPEC.match(text.strip())
    if not match:
        raise ValueError(f"--shard expects I/N (e.g. 2/4), got {text!r}")
    index, count = int(match[1]), int(match[2])
    if not 1 <= index <= count:
        raise ValueError(f"--shard {text}: I must be between 1 and N")
    return Shard(index, count)


def _weight(service: str, index: int) -> int:
    digest = hashlib.sha256(f"{service}\0{index}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def shard_of(service: str, count: int) -> int:
    """The 1-based shard evaluating ``service`` among ``count`` shards."""
    return max(range(1, count + 1), key=lambda index: _weight(service, index))


def assignment(services: Collection[str], count: int) -> dict[str, int]:
    """Service name -> shard, for every service (what `--shard` prints and the docs show)."""
    return {name: shard_of(name, count) for name in sorted(services)}


def keeps(services: Collection[str], shard: Shard) -> Callable[[str], bool]:
    """Whether shard ``shard`` writes a file, by its path: every shared file, and the
    per-service alert files (rules and promtool tests) of the services assigned to it."""
    known = set(services)

    def keep(path: str) -> bool:
        owner = _owner(path, known)
        return owner is None or shard_of(owner, shard.count) == shard.index
    return keep


def _owner(path: str, services: set[str]) -> str | None:
    """The service a per-service alert file belongs to; None for shared files."""
    name = naming.parse_path(path)
    return name.service if name and name.service in services else None
