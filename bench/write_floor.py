"""The disk's floor for a generate run: write the files of an output tree again, as plain
bytes, from two processes (as generate's two workers do), into a new folder.

Why: on this machine (journal-less ext4, shared with other sessions) creating a file costs
the kernel from ~20 µs to ~250 µs depending on how many inodes were freed near the folder
in the last ~30 s (`recently_deleted`, scanned for each new inode). A cold generate of
1,000 services creates ~12,000 files, so the same code's run varies by seconds of CPU with
its neighbours. Timed beside each cold run, this floor tells how much of it was the disk.

Usage: python bench/write_floor.py SOURCE DESTINATION  → prints "wall cpu sys" (seconds).
The contents are read before the clock starts and held in memory (~1.1 GB for 10,000
bench services); DESTINATION must not exist.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import sys
import time
from multiprocessing.synchronize import Event
from pathlib import Path


def _files(source: Path) -> list[tuple[str, bytes]]:
    """Every file under `source` (relative path, contents), sorted by path."""
    return [(str(path.relative_to(source)), path.read_bytes())
            for path in sorted(source.rglob("*")) if path.is_file()]


# The files to write, set before the workers are forked (inherited, not pickled).
_FILES: list[tuple[str, bytes]] = []


def _write(destination: str, worker: int, go: Event) -> None:
    """Once `go` is set, write every second file, starting at `worker`."""
    go.wait()
    for relative, data in _FILES[worker::2]:
        with open(os.path.join(destination, relative), "wb") as handle:
            handle.write(data)


def main() -> None:
    source, destination = Path(sys.argv[1]), Path(sys.argv[2])
    _FILES.extend(_files(source))
    destination.mkdir()
    for folder in sorted({Path(relative).parent for relative, _ in _FILES}):
        (destination / folder).mkdir(parents=True, exist_ok=True)
    fork = multiprocessing.get_context("fork")
    go = fork.Event()
    workers = [fork.Process(target=_write, args=(str(destination), worker, go))
               for worker in (0, 1)]
    for worker in workers:  # forked before the clock starts, each with its half
        worker.start()
    start = time.perf_counter()
    go.set()
    for worker in workers:
        worker.join()
    wall = time.perf_counter() - start
    if any(worker.exitcode for worker in workers):
        sys.exit("a writer failed")
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(f"{wall:.3f} {usage.ru_utime + usage.ru_stime:.3f} {usage.ru_stime:.3f}")


if __name__ == "__main__":
    main()
