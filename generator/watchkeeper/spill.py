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
import tempfile
from array import array
from collections.abc import Iterable, Iterator, Mapping

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

    def __init__(self, pairs: Iterable[tuple[str, str]], folder: Folder = None) -> None:
        self.count = 0
        self._file = None
        self._pairs: list[tuple[str, str]] | None = []
        size = 0
        pairs = iter(pairs)
        for key, value in pairs:
            _line(key, value)  # checked as it would be written
            self._pairs.append((key, value))
            self.count += 1
            size += len(key) + len(value)
            if size >= BUFFER:
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
        fd, offset, rest = self._file.fileno(), 0, b""
        while chunk := os.pread(fd, _CHUNK, offset):
            offset += len(chunk)
            lines = (rest + chunk).split(b"\n")
            rest = lines.pop()
            for line in lines:
                key, _, value = line.decode().partition(_SEPARATOR)
                yield key, value

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


class Records:
    """Objects pickled one at a time into an anonymous temporary file in `folder` as they
    are added, read back by index range: many objects of which a process needs a few at a
    time (a worker, the services of its task) stay on disk, not in memory. Each is pickled
    alone (none refers to another), so any range reads back by itself; a forked process
    reads the file it inherited (pread at recorded offsets: no shared file position)."""

    def __init__(self, folder: Folder = None) -> None:
        self._file = tempfile.TemporaryFile(dir=folder, prefix=".watchkeeper-spill.")  # noqa: SIM115 - lives as long as the records
        self._ends = array("Q", [0])  # where each record ends (8 bytes a record)

    def append(self, item: object) -> None:
        data = pickle.dumps(item, pickle.HIGHEST_PROTOCOL)
        self._file.write(data)
        self._ends.append(self._ends[-1] + len(data))

    def __len__(self) -> int:
        return len(self._ends) - 1

    def seal(self) -> None:
        """Every record added is on disk: call before forking processes that read them
        (else each would inherit the unwritten buffer)."""
        self._file.flush()

    def read(self, start: int, stop: int) -> list:
        """The records `start` to `stop` (excluded), in one read."""
        start, stop = max(0, start), min(stop, len(self))
        if start >= stop:
            return []
        self.seal()
        first = self._ends[start]
        view = memoryview(_pread_all(self._file.fileno(), self._ends[stop] - first, first))
        return [pickle.loads(view[self._ends[i] - first:self._ends[i + 1] - first])
                for i in range(start, stop)]

    def close(self) -> None:
        self._file.close()


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
