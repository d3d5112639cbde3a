"""Pairs of strings too many to hold in memory, read back sorted: the path → sha256 of every
file a run wrote, the files of every service built. A run's memory must not grow with the
number of services, and these grow with it (13 files a service), so they go to disk as they
come and are merged from there (an external merge sort) whenever they are read.
"""

from __future__ import annotations

import heapq
import itertools
import os
import pickle
import shutil
import tempfile
import weakref
from array import array
from collections.abc import Collection, Iterable, Iterator, Mapping

# Characters of pairs kept in memory before they are sorted and written out as one run.
BUFFER = 1 << 19
# Runs merged into one when there are this many: open files stay few at any size.
FAN_IN = 16
_SEPARATOR = "\0"  # neither a path nor a digest can hold a NUL
_CHUNK = 1 << 14  # bytes read at once from a run (16 runs are read at once by a merge)

Folder = str | os.PathLike[str] | None


class Run:
    """Pairs kept once, in the order given, and read back from the start as often as
    needed: in memory while they come to fewer than `BUFFER` characters (a small spec never
    touches the disk), else in an anonymous temporary file in `folder` (gone when closed or
    when the process ends; put it on the output's disk rather than in a RAM-backed /tmp)."""

    def __init__(self, pairs: Iterable[tuple[str, str]], folder: Folder = None,
                 buffer: int | None = None) -> None:
        """`buffer`: characters kept in memory before the pairs go to disk (`BUFFER`)."""
        self.count = 0
        self._file = None
        self._pairs: list[tuple[str, str]] | None = []
        size, buffer = 0, BUFFER if buffer is None else buffer
        pairs = iter(pairs)
        for key, value in pairs:
            _line(key, value)  # checked as it would be written
            self._pairs.append((key, value))
            self.count += 1
            size += len(key) + len(value)
            if size >= buffer:
                self._to_disk(itertools.chain(self._pairs, pairs), folder)
                return

    def _to_disk(self, pairs: Iterable[tuple[str, str]], folder: Folder) -> None:
        self._file = tempfile.TemporaryFile(dir=folder, prefix=".watchkeeper-spill.")  # noqa: SIM115 - lives as long as the run
        self._pairs, self.count = None, 0
        write = self._file.write
        for key, value in pairs:
            write(_line(key, value))
            self.count += 1
        self._file.flush()  # read back with pread, past the buffer

    def __iter__(self) -> Iterator[tuple[str, str]]:
        """The pairs from the first. Read at offsets of its own (pread): several reads of
        one run can be under way at once."""
        if self._file is None:
            assert self._pairs is not None
            yield from self._pairs
            return
        yield from _read_pairs(self._file.fileno(), _CHUNK)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._pairs = None


class SortedPairs:
    """(key, value) pairs added in any order, read back in key order (pairs with equal keys
    in the order they were added) as often as needed. Pairs of at most `BUFFER` characters
    are in memory (~1.3 MB: 4,800 paths and digests); the others are in sorted `Run`s in
    `folder`."""

    def __init__(self, folder: Folder = None) -> None:
        self._folder = folder
        self._pending: list[tuple[str, str]] = []
        self._size = 0  # characters pending
        self._runs: list[Run] = []
        self._added = 0

    def add(self, key: str, value: str) -> None:
        self._pending.append((key, value))
        self._added += 1
        self._size += len(key) + len(value)
        if self._size >= BUFFER:
            self._spill()

    def update(self, pairs: Mapping[str, str]) -> None:
        for key, value in pairs.items():
            self.add(key, value)

    def __len__(self) -> int:
        """How many pairs were added (a key added twice counts twice)."""
        return self._added

    def __iter__(self) -> Iterator[tuple[str, str]]:
        streams: list[Iterable[tuple[str, str]]] = list(self._runs)
        streams.append(sorted(self._pending, key=_key))  # stable: added order kept
        return heapq.merge(*streams, key=_key)  # stable too: earlier runs first

    def _spill(self) -> None:
        self._pending.sort(key=_key)
        self._runs.append(Run(self._pending, self._folder))
        self._pending, self._size = [], 0
        if len(self._runs) >= FAN_IN:
            merged = Run(heapq.merge(*self._runs, key=_key), self._folder)
            self.close()
            self._runs = [merged]

    def close(self) -> None:
        for run in self._runs:
            run.close()
        self._runs = []


class Lines(Collection[str]):
    """Strings without line breaks (service names) appended one at a time to an anonymous
    temporary file and read back in order, as often as needed: a list of them would cost
    the process (and every process forked from it) memory with their number; this costs
    a write buffer. Not for lookups: each read goes through the file."""

    def __init__(self, folder: Folder = None) -> None:
        self._file = tempfile.TemporaryFile(dir=folder, prefix=".watchkeeper-spill.")  # noqa: SIM115 - lives as long as the lines
        self._count = 0

    def append(self, text: str) -> None:
        if "\n" in text:
            raise ValueError(f"cannot keep {text!r}: it holds a line break")
        self._file.write(f"{text}\n".encode())
        self._count += 1

    def __len__(self) -> int:
        return self._count

    def __contains__(self, text: object) -> bool:
        return any(line == text for line in self)

    def __iter__(self) -> Iterator[str]:
        self._file.flush()
        fd, offset, rest, left = self._file.fileno(), 0, b"", self._count
        while left and (chunk := os.pread(fd, _CHUNK, offset)):  # those appended later: not
            offset += len(chunk)
            lines = (rest + chunk).split(b"\n")
            rest = lines.pop()
            for line in lines[:left]:
                yield line.decode()
            left -= min(left, len(lines))

    def close(self) -> None:
        self._file.close()


class Shelf:
    """Sorted runs of pairs put by several processes (generate's worker processes, one run
    per task), each a named file in a folder of its own, read back merged in key order;
    pairs with equal keys come in the order of the runs' numbers, then as put. The process
    that puts a run keeps nothing of it: what a run's pairs cost the process that reads
    them is the merge's, the same for any number of runs.

    The folder is made in `folder` (the output's disk: several runs are written at once);
    `close` removes it, and so does the end of the object that made it (a copy sent to
    another process only puts runs there)."""

    def __init__(self, folder: Folder = None, prefix: str = ".watchkeeper-shelf.") -> None:
        self.path = tempfile.mkdtemp(prefix=prefix, dir=folder)
        self._remove: weakref.finalize | None = weakref.finalize(
            self, shutil.rmtree, self.path, ignore_errors=True)

    def __getstate__(self) -> dict[str, object]:
        return {"path": self.path}  # a copy in another process removes nothing

    def __setstate__(self, state: dict[str, str]) -> None:
        self.path, self._remove = state["path"], None

    def put(self, kind: str, number: int, pairs: Iterable[tuple[str, str]]) -> None:
        """Run `number` of `kind`: `pairs` sorted by key (stably) and written at once. A
        number is put once per kind."""
        data = b"".join(_line(key, value) for key, value in sorted(pairs, key=_key))
        fd = os.open(self._run(kind, number), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            view, written = memoryview(data), 0
            while written < len(data):
                written += os.write(fd, view[written:])
        finally:
            os.close(fd)

    def _run(self, kind: str, number: int) -> str:
        if not kind.isidentifier():
            raise ValueError(f"not a run kind: {kind!r}")
        return os.path.join(self.path, f"{kind}.{number:012d}")

    def __call__(self, kind: str) -> Iterator[tuple[str, str]]:
        """Every pair put under `kind`, in key order (see the class). Runs are merged
        `SHELF_FAN_IN` at a time, a group into one `Run` on disk, until one merge is left,
        which is read as it goes: open files and read buffers stay as few at any size."""
        prefix = f"{kind}."
        with os.scandir(self.path) as entries:
            names = sorted(entry.name for entry in entries if entry.name.startswith(prefix))
        streams: list[Iterable[tuple[str, str]]] = [
            _named_run(os.path.join(self.path, name)) for name in names]
        made: list[Run] = []
        try:
            while len(streams) > SHELF_FAN_IN:  # groups of consecutive runs: order kept
                merged = [Run(heapq.merge(*streams[at:at + SHELF_FAN_IN], key=_key),
                              os.path.dirname(self.path), buffer=0)  # straight to disk
                          for at in range(0, len(streams), SHELF_FAN_IN)]
                for run in made:
                    run.close()
                made = streams = merged  # type: ignore[assignment]
            yield from heapq.merge(*streams, key=_key)
        finally:
            for run in made:
                run.close()

    def close(self) -> None:
        """Remove the folder and every run in it (in the process that made it)."""
        if self._remove is not None:
            self._remove()


# Runs of a `Shelf` merged at once, and the bytes read at once from each (runs are small:
# a task's pairs, ~70 KB for 50 services' files).
SHELF_FAN_IN = 64
_SHELF_CHUNK = 1 << 12


def _named_run(path: str) -> Iterator[tuple[str, str]]:
    """The pairs of a run written by `Shelf.put`, opened when first read."""
    fd = os.open(path, os.O_RDONLY)
    try:
        yield from _read_pairs(fd, _SHELF_CHUNK)
    finally:
        os.close(fd)


def _read_pairs(fd: int, size: int) -> Iterator[tuple[str, str]]:
    """The pairs of a file of `_line`s, read `size` bytes at a time at offsets of its
    own (pread: no shared file position)."""
    offset, rest = 0, b""
    while chunk := os.pread(fd, size, offset):
        offset += len(chunk)
        lines = (rest + chunk).split(b"\n")
        rest = lines.pop()
        for line in lines:
            key, _, value = line.decode().partition(_SEPARATOR)
            yield key, value


class Records:
    """Objects pickled one at a time into an anonymous temporary file in `folder` as they
    are added, read back by index range: many objects of which a process needs a few at a
    time (a worker, the services of its task) stay on disk, not in memory. Each is pickled
    alone (none refers to another), so any range reads back by itself; a forked process
    reads the file it inherited (pread at recorded offsets: no shared file position)."""

    def __init__(self, folder: Folder = None) -> None:
        self._file = tempfile.TemporaryFile(dir=folder, prefix=".watchkeeper-spill.")  # noqa: SIM115 - lives as long as the records
        self._ends = array("Q", [0])  # where each record ends (8 bytes a record)
        # The ends again, on disk as of the last `seal`: a process forked earlier reads the
        # records added since from there (generate's workers start while a spec is read).
        self._index = tempfile.TemporaryFile(dir=folder, prefix=".watchkeeper-spill.")  # noqa: SIM115 - as the records
        self._indexed = 1  # ends in `_index` (`_ends[0]`, always 0, is not written)

    def append(self, item: object) -> None:
        data = pickle.dumps(item, pickle.HIGHEST_PROTOCOL)
        self._file.write(data)
        self._ends.append(self._ends[-1] + len(data))

    def __len__(self) -> int:
        """Records known to this process (one forked before the last `seal` learns of the
        later ones when it reads them)."""
        return len(self._ends) - 1

    def seal(self) -> None:
        """Every record added is on disk, readable by processes forked before as after:
        call before forking processes that read them (else each would inherit the
        unwritten buffer) and before telling one forked earlier to read the new ones."""
        self._file.flush()
        if self._indexed < len(self._ends):
            self._index.write(self._ends[self._indexed:].tobytes())
            self._index.flush()
            self._indexed = len(self._ends)

    def _catch_up(self) -> None:
        """The ends of records sealed since this process was forked (none in the process
        that adds them: its own are always known)."""
        offset = (len(self._ends) - 1) * self._ends.itemsize
        size = os.fstat(self._index.fileno()).st_size - offset
        size -= size % self._ends.itemsize  # whole ends only, should a write be under way
        if size > 0:
            self._ends.frombytes(_pread_all(self._index.fileno(), size, offset))
            self._indexed = len(self._ends)  # known from there: never written again

    def read(self, start: int, stop: int) -> list:
        """The records `start` to `stop` (excluded), in one read."""
        if stop > len(self):
            self._catch_up()
        start, stop = max(0, start), min(stop, len(self))
        if start >= stop:
            return []
        self._file.flush()  # this process's own records (the index is for others)
        first = self._ends[start]
        view = memoryview(_pread_all(self._file.fileno(), self._ends[stop] - first, first))
        return [pickle.loads(view[self._ends[i] - first:self._ends[i + 1] - first])
                for i in range(start, stop)]

    def close(self) -> None:
        self._file.close()
        self._index.close()


def _pread_all(fd: int, size: int, offset: int) -> bytes:
    data = os.pread(fd, size, offset)
    while len(data) < size:  # a short read (a signal, a huge size): the rest
        more = os.pread(fd, size - len(data), offset + len(data))
        if not more:
            raise EOFError(f"spill file ended {size - len(data)} bytes early")
        data += more
    return data


def _line(key: str, value: str) -> bytes:
    if _SEPARATOR in key or "\n" in key or _SEPARATOR in value or "\n" in value:
        raise ValueError(f"cannot keep {key!r}: it holds a NUL or a line break")
    return f"{key}{_SEPARATOR}{value}\n".encode()


def _key(pair: tuple[str, str]) -> str:
    return pair[0]


def last_of_each(pairs: Iterable[tuple[str, str]]) -> Iterator[tuple[str, str]]:
    """Sorted `pairs` with one pair per key, the last added (what a dict would keep)."""
    for key, group in itertools.groupby(pairs, key=_key):
        *_, last = group
        yield key, last[1]


def grouped(pairs: Iterable[tuple[str, str]]) -> Iterator[tuple[str, tuple[str, ...]]]:
    """Sorted `pairs` as (key, its values in the order added)."""
    for key, group in itertools.groupby(pairs, key=_key):
        yield key, tuple(value for _, value in group)
