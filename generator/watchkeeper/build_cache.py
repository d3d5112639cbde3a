"""Skip rebuilding services whose inputs did not change (a warm `watchkeeper generate`).

A service's files are a function of the resolved service, the spec file's name (it is in
every header), the output folders selected and the generator itself (its code, Python, the
installed libraries and, by size and mtime, the files of the modules it imports: a library
edited in place is noticed too): builders do no I/O and keep no state. So each run records,
per service, a key over all of these and the files it produced with their sha256. The next run,
for a service whose key is the same, reads those files back and, when every one is still a
regular file holding exactly the recorded bytes, reports them as in place (as it would after
building them and finding the same bytes there) instead of building them again. Anything
else (no record, another key, a file edited, missing, or replaced by a link) builds the
service as before. Files drawn from every service (routing, the overview) are always built.

The record is one JSON file, `<out>/.watchkeeper-cache/generate.json`: safe to lose (the
next run builds everything); a file there that watchkeeper did not write is left alone.
Each service's entry is on a line of its own, so that neither run holds the whole record:
the next run keeps where each entry starts, and its workers read the entries they need.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import heapq
import importlib
import itertools
import json
import os
import sys
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from watchkeeper.model import Service
from watchkeeper.spill import Shelf, SortedPairs, last_of_each
from watchkeeper.writers import open_regular

FORMAT = "watchkeeper generate record 2"  # 2: an entry a line (1: one line)
_HEAD = f'{{"format":{json.dumps(FORMAT)},"services":{{\n'.encode()
FOLDER = ".watchkeeper-cache"
RECORD = "generate.json"
# What building each output folder imports ("*": any), before its first service is built.
_GENERATION_MODULES = {"*": ["watchkeeper.generate"],
                       "dashboards": ["watchkeeper.dashboards.build"]}


def generator_digest() -> str:
    """sha256 of everything besides the spec that decides what a service's files hold: the
    watchkeeper package and installed distributions (`_installed_digest`) and the module
    files this process has imported (`_imported_files`)."""
    hasher = hashlib.sha256(_installed_digest().encode())
    hasher.update(_imported_files().encode())
    return hasher.hexdigest()


@functools.cache
def _installed_digest() -> str:
    """sha256 of every file of the watchkeeper package, the Python version and the name and
    version of every distribution installed where Python imports from."""
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


def _imported_files() -> str:
    """Path, size and mtime of the file of every library module imported so far (not the
    standard library's, which Python's version covers, nor watchkeeper's, hashed whole),
    one a line. A library edited in place without a new version (an editable install of
    grafanalib or PyYAML, a patched file) changes no distribution's name, so its files are
    looked at: a stat each (~1 ms for the ~90 modules of a run), not their bytes. `load`
    imports what generation imports first."""
    package = os.path.dirname(os.path.abspath(__file__)) + os.sep
    lines = []
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if (name == "__main__" or not isinstance(path, str) or path.startswith(package)
                or name.partition(".")[0] in sys.stdlib_module_names):
            continue
        try:
            stat = os.stat(path)
        except OSError:
            continue
        lines.append(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}")
    return "\n".join(sorted(lines))


class Offsets:
    """Where each service's entry starts in the record, looked up by name: an 8-byte hash
    of the name and an 8-byte offset a service, in arrays sorted by hash. A dict of names
    holds ~130 bytes a service, in the parent and (inherited) in every worker of a warm
    run. Two names of one hash (odds 2**-64 a pair) cost only a rebuild: the entry found
    names another service, so it is not reused."""

    def __init__(self, entries: Iterable[tuple[str, int]] = ()) -> None:
        pairs = sorted((_name_hash(name), at) for name, at in entries)  # by hash, then place
        self._hashes = array("Q", (hashed for hashed, _ in pairs))
        self._starts = array("Q", (at for _, at in pairs))

    def get(self, name: str) -> int | None:
        """Where the entry of `name` starts (of a name given twice, the later in the
        record: what a dict filled line by line keeps), or None."""
        hashed = _name_hash(name)
        index = bisect.bisect_right(self._hashes, hashed) - 1
        if index >= 0 and self._hashes[index] == hashed:
            return self._starts[index]
        return None

    def __len__(self) -> int:
        return len(self._hashes)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, Offsets) and self._hashes == other._hashes
                and self._starts == other._starts)

    __hash__ = None  # type: ignore[assignment] - mutable arrays


def _name_hash(name: str) -> int:
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "little")


class Built:
    """Service → (key, path → sha256) of what this run built, on disk as it comes (see
    spill.py; in `folder`, the output's disk): it grows with the number of services.

    Worker processes put their services' entries (`entry`) on a shelf given to `shelve`
    (`generate` does: the `Written` one, one sorted run per task) instead: those never
    pass through the main process, which merges them from disk when saving."""

    def __init__(self, folder: str | None = None) -> None:
        self._entries = SortedPairs(folder)
        self._shelf: Shelf | None = None

    def __setitem__(self, name: str, entry: tuple[str, dict[str, str]]) -> None:
        self._entries.add(name, entry_text(*entry))

    def shelve(self, shelf: Shelf) -> None:
        """Read the entries put on `shelf` as runs of kind `ENTRIES` too."""
        self._shelf = shelf

    def items(self) -> Iterator[tuple[str, str]]:
        """(service, its record entry as JSON text) in name order."""
        if self._shelf is None:
            return last_of_each(self._entries)
        return last_of_each(heapq.merge(self._entries, self._shelf(ENTRIES),
                                        key=lambda pair: pair[0]))


# The kind of runs `Built` reads from its shelf.
ENTRIES = "entries"


def entry_text(key: str, files: Mapping[str, str]) -> str:
    """A service's entry in the record (its key and files), as JSON text on one line."""
    return json.dumps({"key": key, "files": files}, separators=(",", ":"))


@dataclass(frozen=True)
class Reuse:
    """What the previous run built (where each service's entry starts in the record: the
    entries themselves are read when needed, by the worker building the service), and what
    this run builds (`built`, filled in by `generate` in the parent)."""

    root: str
    prefix: str  # the generator, the spec's name, the output folders
    previous: Offsets  # service → where its entry starts in the record file
    writable: bool = True  # the record file is absent or watchkeeper's
    built: Built = field(default_factory=Built)

    def __getstate__(self) -> dict[str, object]:
        """Pickled without `built` (open files, and the parent's business)."""
        return {**self.__dict__, "built": None}

    def key(self, service: Service) -> str:
        """The service's inputs: its resolved model (every field is in its repr) and
        everything in `prefix`."""
        return hashlib.sha256(f"{self.prefix}\0{service!r}".encode()).hexdigest()

    def files(self, service: Service, key: str) -> dict[str, str] | None:
        """The files recorded for `service` under `key` (path → sha256), read from its
        entry in the record, if every one is still on disk with exactly those bytes; else
        None (build it)."""
        at = self.previous.get(service.name)
        found = None if at is None else _entry_at(_record_path(Path(self.root)), at)
        if found is None or found[0] != service.name or found[1] != key or not found[2]:
            return None
        for relative, hexdigest in found[2].items():
            if not _holds_digest(os.path.join(self.root, relative), hexdigest):
                return None
        return found[2]


def _entry_at(path: Path, at: int) -> tuple[str, str, dict[str, str]] | None:
    try:
        with path.open("rb") as handle:
            handle.seek(at)
            return _entry(handle.readline())
    except OSError:
        return None


def _entry(line: bytes) -> tuple[str, str, dict[str, str]] | None:
    """(service, key, path → sha256) of one line of the record (``"name":{…},``), or None
    when it is not one."""
    try:
        document = json.loads(b"{" + line.rstrip(b"\r\n").removesuffix(b",") + b"}")
    except ValueError:
        return None
    if not isinstance(document, dict) or len(document) != 1:
        return None
    (name, entry), = document.items()
    if not (isinstance(entry, dict) and isinstance(entry.get("key"), str)
            and isinstance(entry.get("files"), dict)):
        return None
    return name, entry["key"], {str(k): str(v) for k, v in entry["files"].items()}


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
    unreadable, or it was written by another format), indexed: where each service's entry
    starts, read line by line (one entry a line, see `save`)."""
    for module in _GENERATION_MODULES["*"] + [m for o in outputs
                                              for m in _GENERATION_MODULES.get(o, [])]:
        importlib.import_module(module)  # so that the digest sees the libraries they import
    prefix = "\0".join([FORMAT, generator_digest(), spec_name, *outputs])
    path = _record_path(root)
    previous = Offsets()
    try:
        with path.open("rb") as handle:
            head = handle.readline()
            if head != _HEAD:
                return Reuse(str(root), prefix, Offsets(), writable=_ours_by_name(path),
                             built=Built(str(root)))
            previous = Offsets(_starts(handle))
    except FileNotFoundError:
        pass
    except OSError:
        return Reuse(str(root), prefix, Offsets(), writable=False, built=Built(str(root)))
    return Reuse(str(root), prefix, previous, built=Built(str(root)))


def _starts(handle: BinaryIO) -> Iterator[tuple[str, int]]:
    """(service, where its entry starts) of each entry from the handle's position on."""
    at = handle.tell()
    for line in handle:
        if (found := _entry(line)) is not None:
            yield found[0], at
        at += len(line)


def _ours_by_name(path: Path) -> bool:
    """A record of another format (or unreadable) is replaced only if it starts like one
    of ours (any version)."""
    try:
        with path.open("rb") as handle:
            return FORMAT.rsplit(" ", 1)[0].encode() in handle.read(200)
    except OSError:
        return False


def save(reuse: Reuse) -> None:
    """Record what this run built (after its files are in place); a record file that
    watchkeeper did not write is left alone."""
    if not reuse.writable:
        return
    entries = reuse.built.items()
    first = next(entries, None)
    if first is None:  # nothing built
        return
    path = _record_path(Path(reuse.root))
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{RECORD}.tmp")
    # one JSON document, {"format":…,"services":{name:{"key":…,"files":{…}},…}}, with
    # each service's entry on a line of its own: written and read entry by entry
    with temporary.open("wb") as handle:
        handle.write(_HEAD)
        separator = ""
        for name, entry in itertools.chain([first], entries):
            handle.write(f"{separator}{json.dumps(name)}:{entry}".encode())
            separator = ",\n"
        handle.write(b"\n}}\n")
    os.replace(temporary, path)
