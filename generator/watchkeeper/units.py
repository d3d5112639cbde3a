"""Parsing and formatting of the spec's units: durations, ratios, byte sizes and counts.

The grammar is deliberately strict (no spaces inside a number, a unit is required where
one is ambiguous) because a budget that silently parses to the wrong magnitude is worse
than an error. General-purpose parsers such as humanfriendly accept ``"20 0ms"`` or a bare
``80`` for a percentage, which is exactly what the spec must reject, hence the small
hand-written grammar here.
"""

from __future__ import annotations

import functools
import math
import re

_NUMBER = r"(?P<number>\d+(?:\.\d+)?|\.\d+)"

_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
}
_BYTE_UNITS = {
    "B": 1,
    "kB": 1000,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "TB": 1000**4,
    "KiB": 1024,
    "MiB": 1024**2,
    "GiB": 1024**3,
    "TiB": 1024**4,
}

_DURATION_RE = re.compile(rf"^{_NUMBER}(?P<unit>ns|us|µs|ms|s|m|h|d|w)$")
_BYTES_RE = re.compile(rf"^{_NUMBER}(?P<unit>B|kB|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$")
_PERCENT_RE = re.compile(rf"^{_NUMBER}%$")


class UnitError(ValueError):
    """A value that does not follow the unit grammar; the message says what was expected."""


def parse_duration(value: object, allow_zero: bool = False) -> float:
    """Return seconds for ``"250us"``, ``"50ms"``, ``"1.5s"``, ``"2m"``; bare numbers are refused.

    A bare number is refused because ``200`` could mean milliseconds or seconds.
    """
    if isinstance(value, bool) or not isinstance(value, str):
        raise UnitError(
            f"expected a duration with a unit such as 250us, 50ms, 1.5s or 2m, got {value!r}")
    match = _DURATION_RE.match(value.strip())
    if not match:
        raise UnitError(f"expected a duration such as 250us, 50ms, 1.5s or 2m, got {value!r}")
    seconds = float(match["number"]) * _DURATION_UNITS[match["unit"]]
    if seconds < 0 or (seconds == 0 and not allow_zero):
        raise UnitError(f"a duration must be greater than zero, got {value!r}")
    return seconds


def parse_wait(value: object) -> float:
    """A `for`-like duration, where ``0s`` (act at once) is meaningful."""
    return parse_duration(value, allow_zero=True)


def parse_ratio(value: object) -> float:
    """Return a fraction in (0, 1] for ``"80%"``, ``"0.1%"`` or a bare fraction ``0.8``.

    A bare number above 1 (``80``) is refused: it is almost certainly a percentage
    written without its sign, and reading it as 8000% would make the alert meaningless.
    """
    if isinstance(value, bool):
        raise UnitError(f"expected a ratio such as 80%, 0.1% or 0.8, got {value!r}")
    if isinstance(value, int | float):
        fraction = float(value)
    elif isinstance(value, str) and (match := _PERCENT_RE.match(value.strip())):
        fraction = float(match["number"]) / 100
    elif isinstance(value, str) and re.fullmatch(_NUMBER, value.strip()):
        fraction = float(value)
    else:
        raise UnitError(f"expected a ratio such as 80%, 0.1% or 0.8, got {value!r}")
    if fraction > 1 and fraction <= 100 and not isinstance(value, str):
        raise UnitError(f"a bare ratio is a fraction up to 1; did you mean '{value}%'?")
    if not 0 < fraction <= 1 or math.isnan(fraction):
        raise UnitError(
            f"a ratio must be above 0 and at most 100% (or a fraction up to 1), got {value!r}"
        )
    return fraction


def parse_bytes(value: object) -> float:
    """Return bytes for ``"512MB"`` (decimal, 10^6) or ``"512MiB"`` (binary, 2^20)."""
    if isinstance(value, bool):
        raise UnitError(f"expected a size such as 512MiB or 2GB, got {value!r}")
    if isinstance(value, int | float):  # 512 could be bytes or MiB: refuse to guess
        raise UnitError(f"a size needs its unit, such as {value}MiB (binary) or {value}MB "
                        f"(decimal), got {value!r}")
    if not isinstance(value, str) or not (match := _BYTES_RE.match(value.strip())):
        raise UnitError(
            f"expected a size such as 512MiB (binary) or 512MB (decimal), got {value!r}")
    size = float(match["number"]) * _BYTE_UNITS[match["unit"]]
    if size <= 0:
        raise UnitError(f"a size must be greater than zero, got {value!r}")
    return size


_RATE_RE = re.compile(rf"^{_NUMBER}/(?P<unit>s|min|h)$")
_RATE_UNITS = {"s": 1.0, "min": 60.0, "h": 3600.0}


def parse_rate(value: object) -> float:
    """Return events per second for ``"50/s"``, ``"3000/min"`` or ``"10/h"``.

    A bare number is refused: ``50`` could be per second or per minute.
    """
    if isinstance(value, bool) or not isinstance(value, str) or \
            not (match := _RATE_RE.match(value.strip())):
        raise UnitError(f"expected a rate such as 50/s, 3000/min or 10/h, got {value!r}")
    per_second = float(match["number"]) / _RATE_UNITS[match["unit"]]
    if per_second <= 0:
        raise UnitError(f"a rate must be greater than zero, got {value!r}")
    return per_second


def parse_count(value: object) -> float:
    """Return a positive whole count such as ``5000``."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise UnitError(f"expected a positive whole number such as 5000, got {value!r}")
    return float(value)


@functools.lru_cache(maxsize=4096)  # a handful of distinct windows, formatted thousands of times
def prometheus_duration(seconds: float) -> str:
    """Format seconds in Prometheus' duration syntax (``1h30m``, ``90s``, ``250ms``).

    Prometheus durations accept no fractions, so ``1.5s`` becomes ``1s500ms``.
    """
    millis = round(seconds * 1000)
    if seconds == 0:
        return "0s"
    if millis <= 0:
        raise UnitError(f"{seconds}s is shorter than Prometheus' 1ms resolution")
    parts = []
    for unit, size in (("w", 604_800_000), ("d", 86_400_000), ("h", 3_600_000),
                       ("m", 60_000), ("s", 1000), ("ms", 1)):
        count, millis = divmod(millis, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


# Budgets and test values repeat for every service: their text is looked up (equal
# numbers, 1 and 1.0 or 0.0 and -0.0, share a cache entry and have the same text).
@functools.lru_cache(maxsize=4096)
def format_number(value: float) -> str:
    """Shortest decimal text for a threshold in PromQL (``0.2``, ``536870912``, ``1e-05``)."""
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


# --- Humanizing, mirroring Prometheus' template functions -----------------------------------
# The generated promtool tests compare annotations literally, so the Python side must render
# a value exactly as Go's humanizeDuration / humanizePercentage / humanize1024 would.


def _go_g4(value: float) -> str:
    """Go's ``%.4g`` (identical to C's for finite values)."""
    return f"{value:.4g}"


def humanize_duration(seconds: float) -> str:
    """Render like Prometheus' ``humanizeDuration``: ``220ms``, ``1.5s``, ``2m 30s``."""
    if math.isnan(seconds) or math.isinf(seconds):
        return _go_g4(seconds)
    if seconds == 0:
        return "0s"
    if abs(seconds) >= 1:
        sign = "-" if seconds < 0 else ""
        whole = int(abs(seconds))
        secs, minutes = whole % 60, (whole // 60) % 60
        hours, days = (whole // 3600) % 24, whole // 86400
        if days:
            return f"{sign}{days}d {hours}h {minutes}m {secs}s"
        if hours:
            return f"{sign}{hours}h {minutes}m {secs}s"
        if minutes:
            return f"{sign}{minutes}m {secs}s"
        return f"{sign}{_go_g4(abs(seconds))}s"
    return _small(seconds) + "s"


_SMALL = ("m", "u", "n", "p", "f", "a", "z", "y")
_LARGE = ("k", "M", "G", "T", "P", "E", "Z", "Y")
_BINARY = ("ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi")


def _small(value: float) -> str:
    """Scale a value under 1 up by thousands, with m, u, n… (as Prometheus does)."""
    prefix = ""
    for candidate in _SMALL:
        if abs(value) >= 1:
            break
        prefix, value = candidate, value * 1000
    return f"{_go_g4(value)}{prefix}"


def _large(value: float, base: int, prefixes: tuple[str, ...]) -> str:
    """Scale a value down by `base` while it is at least `base`, with the given prefixes."""
    prefix = ""
    for candidate in prefixes:
        if abs(value) < base:
            break
        prefix, value = candidate, value / base
    return f"{_go_g4(value)}{prefix}"


def humanize_percentage(fraction: float) -> str:
    """Render like Prometheus' ``humanizePercentage``: ``0.5`` → ``50%``."""
    return f"{_go_g4(fraction * 100)}%"


def humanize_1024(value: float) -> str:
    """Render like Prometheus' ``humanize1024``: ``536870912`` → ``512Mi``."""
    if abs(value) <= 1 or math.isnan(value) or math.isinf(value):
        return _go_g4(value)
    return _large(value, 1024, _BINARY)


def humanize(value: float) -> str:
    """Render like Prometheus' ``humanize`` (SI prefixes): ``12000`` → ``12k``."""
    if value == 0 or math.isnan(value) or math.isinf(value):
        return _go_g4(value)
    return _large(value, 1000, _LARGE) if abs(value) >= 1 else _small(value)
