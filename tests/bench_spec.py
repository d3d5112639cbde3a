"""The benchmark's synthetic spec (bench/generate.py's `spec`), for tests that need a spec of
many services shaped like the one the benchmarks time."""

from __future__ import annotations

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"


def bench_spec(count: int, **kinds: object) -> dict:
    """bench/generate.py's spec of `count` services (`kinds`: its keyword arguments)."""
    sys.path.insert(0, str(BENCH))
    try:
        import generate as bench
    finally:
        sys.path.remove(str(BENCH))
    return bench.spec(count, **kinds)
