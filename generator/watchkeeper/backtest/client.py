"""The Prometheus HTTP API as the backtest uses it: range queries in chunks, series lookups.

Works unchanged against VictoriaMetrics (same API). Every failure becomes a
:class:`BacktestError` with one line naming the server, never a traceback.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

# Prometheus refuses range queries returning more than 11,000 points per series.
MAX_POINTS = 11_000

Labels = dict[str, str]
Series = tuple[Labels, list[tuple[int, float]]]  # labels, [(timestamp ms, value)]


class BacktestError(Exception):
    """A problem the user can fix (bad server, bad range, missing data): exit status 2."""


@dataclass(frozen=True)
class Chunk:
    """One range query's worth of evaluation timestamps (milliseconds)."""

    start: int
    end: int
    step: int

    def times(self) -> range:
        return range(self.start, self.end + 1, self.step)


def chunks(start: int, end: int, step: int, max_points: int = MAX_POINTS) -> Iterator[Chunk]:
    """Split ``[start, end]`` (ms, both on the step grid) into queries of at most
    ``max_points`` timestamps each, so no series exceeds the server's points limit."""
    if max_points < 1:
        raise ValueError("max_points must be positive")
    while start <= end:
        last = min(end, start + (max_points - 1) * step)
        yield Chunk(start, last, step)
        start = last + step


class Client:
    """A Prometheus-compatible query API at ``url``; ``timeout`` in seconds per request."""

    def __init__(self, url: str, timeout: float = 60.0, max_points: int = MAX_POINTS):
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise BacktestError(f"--prometheus must be an http(s) URL, got {url!r}")
        self.base = url.rstrip("/")
        # Shown in messages: host and port only (a URL may carry credentials).
        self.host = parsed.hostname + (f":{parsed.port}" if parsed.port else "")
        self.timeout = timeout
        self.max_points = max_points

    def _call(self, path: str, params: list[tuple[str, str]], what: str) -> object:
        body = urllib.parse.urlencode(params).encode()
        request = urllib.request.Request(
            self.base + path, data=body, method="POST",
            headers={"Content-Type": "application/x-www-form-urlencoded"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                payload = response.read()
        except urllib.error.HTTPError as error:
            detail = _error_detail(error.read())
            raise BacktestError(f"{self.host} answered HTTP {error.code} to {what}"
                                + (f": {detail}" if detail else "")) from None
        except (TimeoutError, urllib.error.URLError, ConnectionError) as error:
            reason = getattr(error, "reason", error)
            raise BacktestError(f"cannot reach Prometheus at {self.host}: {reason}") from None
        try:
            answer = json.loads(payload)
        except ValueError:
            raise BacktestError(f"{self.host} did not answer {what} with JSON; is "
                                "--prometheus the Prometheus (or VictoriaMetrics) URL?") from None
        if not isinstance(answer, dict) or answer.get("status") != "success":
            detail = answer.get("error") if isinstance(answer, dict) else None
            raise BacktestError(f"{self.host} refused {what}: {detail or 'no status'}")
        return answer.get("data")

    def query_range(self, expr: str, start: int, end: int, step: int,
                    what: str = "a range query") -> Iterator[tuple[Chunk, list[Series]]]:
        """Evaluate ``expr`` at every step of ``[start, end]`` (ms), one chunk at a time, so
        memory holds one chunk's samples however long the range."""
        for chunk in chunks(start, end, step, self.max_points):
            data = self._call("/api/v1/query_range", [
                ("query", expr), ("start", _seconds(chunk.start)),
                ("end", _seconds(chunk.end)), ("step", _seconds(step)),
                # VictoriaMetrics otherwise shifts start/end to its cache grid.
                ("nocache", "1"),
            ], what)
            yield chunk, _matrix(data, self.host)

    def has_series(self, selector: str, start: int, end: int) -> bool:
        data = self._call("/api/v1/series", [
            ("match[]", selector), ("start", _seconds(start)), ("end", _seconds(end))],
            f"a series lookup of {selector}")
        return bool(data)


def _seconds(millis: int) -> str:
    return f"{millis / 1000:.3f}"


def _matrix(data: object, host: str) -> list[Series]:
    if not isinstance(data, dict) or data.get("resultType") != "matrix":
        raise BacktestError(f"{host} answered a range query without a matrix")
    result = []
    for item in data.get("result") or []:
        values = [(round(float(t) * 1000), float(v)) for t, v in item.get("values") or []]
        result.append((dict(item.get("metric") or {}), values))
    return result


def _error_detail(body: bytes) -> str:
    try:
        answer = json.loads(body)
    except ValueError:
        return body.decode(errors="replace").strip()[:200]
    return str(answer.get("error", ""))[:300] if isinstance(answer, dict) else ""
