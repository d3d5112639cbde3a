"""Skip rebuilding services whose inputs did not change (a warm `watchkeeper generate`).

A service's files are a function of the resolved service, the spec file's name (it is in
every header), the output folders selected and the generator itself (its code, Python, the
installed libraries): builders do no I/O and keep no state. So each run records, per
service, a key over all of these and the files it produced with their sha256. The next run,
for a service whose key is the same, reads those files back and, when every one is still a
regular file holding exactly the recorded bytes, reports them as in place (as it would after
building them and finding the same bytes there) instead of building them again. Anything
else (no record, another key, a file edited, missing, or replaced by a link) builds the
service as before. Files drawn from every service (routing, the overview) are always built.

The record is one JSON file, `<out>/.watchkeeper-cache/generate.json`: safe to lose (the
next run builds everything); a file there that watchkeeper did not write is left alone.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from watchkeeper.model import Service
from watchkeeper.spill import SortedPairs, last_of_each
from watchkeeper.writers import open_regular

FORMAT = "watchkeeper generate record 1"
FOLDER = ".watchkeeper-cache"
RECORD = "generate.json"


@functools.cache
def generator_digest() -> str:
    """sha256 of everything besides the spec that decides what a service's files hold:
    every file of the watchkeeper package, the Python version and the name and version
    of every distribution installed where Python imports from."""
    hasher = hashlib.sha256(sys.version.encode())
    package = Path(__file__).resolve().parent
    for path in sorted(package.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            hasher.update(f"\0{path.relative_to(package).as_posix()}\0".encode())
            hasher.update(path.read_bytes())
    for folder in sys.path:
        try:
            names = sorted(os.listdir(folder or "."))
        except OSError:
            continue
        hasher.update(f"\0{folder}\0".encode())
        hasher.update("\0".join(n for n in names
                                if n.endswith((".dist-info", ".egg-info", ".egg-link", ".pth"))
                                ).encode())
    return hasher.hexdigest()


class Built:
    """Service → (key, path → sha256) of what this run built, on disk as it comes (see
    spill.py; in `folder`, the output's disk): it grows with the number of services."""

    def __init__(self, folder: str | None = None) -> None:
        self._entries = SortedPairs(folder)

    def __setitem__(self, name: str, entry: tuple[str, dict[str, str]]) -> None:
        key, files = entry
        self._entries.add(name, json.dumps({"key": key, "files": files}, separators=(",", ":")))

    def __len__(self) -> int:
        return len(self._entries)

    def items(self) -> Iterator[tuple[str, str]]:
        """(service, its record entry as JSON text) in name order."""
        return last_of_each(self._entries)


@dataclass(frozen=True)
class Reuse:
    """What the previous run built, for one run's workers (picklable, without `built`), and
    what this run builds (`built`, filled in by `generate` in the parent)."""

    root: str
    prefix: str  # the generator, the spec's name, the output folders
    previous: Mapping[str, tuple[str, dict[str, str]]]  # service → (key, path → sha256)
    writable: bool = True  # the record file is absent or watchkeeper's
    built: Built = field(default_factory=Built)

    def __getstate__(self) -> dict[str, object]:
        """What a worker gets: all but `built` (open files, and the parent's business)."""
        return {**self.__dict__, "built": None}

    def key(self, service: Service) -> str:
        """The service's inputs: its resolved model (every field is in its repr) and
        everything in `prefix`."""
        return hashlib.sha256(f"{self.prefix}\0{service!r}".encode()).hexdigest()

    def files(self, service: Service, key: str) -> dict[str, str] | None:
        """The files recorded for `service` under `key` (path → sha256), if every one is
        still on disk with exactly those bytes; else None (build it)."""
        found = self.previous.get(service.name)
        if found is None or found[0] != key or not found[1]:
            return None
        for relative, hexdigest in found[1].items():
            if not _holds_digest(os.path.join(self.root, relative), hexdigest):
                return None
        return dict(found[1])


def _holds_digest(path: str, hexdigest: str) -> bool:
    """Whether `path` is a regular file (not a link) whose sha256 is `hexdigest`."""
    opened = open_regular(path)
    if opened is None:
        return False
    with opened[0] as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest() == hexdigest


def _record_path(root: Path) -> Path:
    return root / FOLDER / RECORD


def load(root: Path, spec_name: str, outputs: Sequence[str]) -> Reuse:
    """The previous run's record under `root` (nothing reusable when there is none, it is
    unreadable, or it was written by another format)."""
    prefix = "\0".join([FORMAT, generator_digest(), spec_name, *outputs])
    path = _record_path(root)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Reuse(str(root), prefix, {}, built=Built(str(root)))
    except (OSError, ValueError):
        return Reuse(str(root), prefix, {}, writable=path.is_file() and _ours_by_name(path),
                     built=Built(str(root)))
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        other = document.get("format") if isinstance(document, dict) else None
        mine = isinstance(other, str) and other.startswith(FORMAT.rsplit(" ", 1)[0])
        return Reuse(str(root), prefix, {}, writable=mine,  # another version of ours
                     built=Built(str(root)))
    services = document.get("services")
    previous = {}
    if isinstance(services, dict):
        for name, entry in services.items():
            if (isinstance(entry, dict) and isinstance(entry.get("key"), str)
                    and isinstance(entry.get("files"), dict)):
                previous[name] = (entry["key"], {str(k): str(v)
                                                 for k, v in entry["files"].items()})
    return Reuse(str(root), prefix, previous, built=Built(str(root)))


def _ours_by_name(path: Path) -> bool:
    """An unreadable record is replaced only if it starts like one of ours."""
    try:
        with path.open("rb") as handle:
            return FORMAT.encode() in handle.read(200)
    except OSError:
        return False


def save(reuse: Reuse) -> None:
    """Record what this run built (after its files are in place); a record file that
    watchkeeper did not write is left alone."""
    if not reuse.writable or not reuse.built:
        return
    path = _record_path(Path(reuse.root))
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{RECORD}.tmp")
    # {"format":…,"services":{name:{"key":…,"files":{…}},…}} written entry by entry
    with temporary.open("w", encoding="utf-8") as handle:
        handle.write(f'{{"format":{json.dumps(FORMAT)},"services":{{')
        for index, (name, entry) in enumerate(reuse.built.items()):
            handle.write(f'{"," if index else ""}{json.dumps(name)}:{entry}')
        handle.write("}}")
    os.replace(temporary, path)
