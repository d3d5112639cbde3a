"""Six hours of synthetic history for tests/backtest/spec.yaml, with incidents at known minutes.

One sample a minute from ``start`` (Unix seconds, a multiple of 60). The same values are written
as OpenMetrics (for ``promtool tsdb create-blocks-from openmetrics``), as Prometheus' text
format with millisecond timestamps (VictoriaMetrics' import API) and as promtool unit-test
``input_series``, so every evaluator sees identical samples.

The incidents, by minute (half-open ranges):

* memory of instance i2 at 600 MiB (warning budget 512 MiB, critical 1 GiB) during [60, 100);
* memory of instance i1 at 2 GiB during [200, 203): shorter than ``for``, never fires;
* half of all requests fail with code 500 during [150, 180) (budgets 1 % and 10 %);
* every request takes 0.8 s during [240, 270) (p99 budgets 500 ms and 2 s);
* target i2 down (``up`` 0) during [300, 320).

The cache hit ratio stays at 95 % (budgets 80 % and 50 %): its alerts must never fire.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MINUTES = 360
MIB = 1024 * 1024
RPS = 10
BUCKETS = ("0.05", "0.1", "0.25", "0.5", "1", "2.5", "+Inf")


@dataclass(frozen=True)
class Incident:
    """What a reviewer expects: the alert and severity that must fire, the instance labels, the
    minutes the fault lasted and how long the signal lags behind the fault (its rate window)."""

    alert: str
    severity: str
    labels: dict
    start: int
    end: int
    lag: int = 0


INCIDENTS = [
    Incident("MemoryHigh", "warning", {"instance": "i2"}, 60, 100),
    Incident("HttpErrorRatioHigh", "warning", {}, 150, 180, lag=5),
    Incident("HttpErrorRatioHigh", "critical", {}, 150, 180, lag=5),
    Incident("HttpLatencyP99High", "warning", {}, 240, 270, lag=5),
    Incident("TargetDown", "warning", {"instance": "i2"}, 300, 320),
]
# (alert, severity) pairs of the spec that no incident crosses.
QUIET = [("MemoryHigh", "critical"), ("HttpLatencyP99High", "critical"),
         ("CacheHitRatioLow", "warning"), ("CacheHitRatioLow", "critical"),
         ("ServiceDown", "critical"), ("ServiceMetricsAbsent", "warning")]


def _in(minute: int, start: int, end: int) -> bool:
    return start <= minute < end


@dataclass
class History:
    start: int
    series: dict[tuple[str, tuple[tuple[str, str], ...]], list[float]] = field(
        default_factory=dict)

    def add(self, name: str, labels: dict, values: list[float]) -> None:
        key = (name, tuple(sorted({"job": "checkout", **labels}.items())))
        self.series[key] = values

    @staticmethod
    def _selector(name: str, labels: tuple) -> str:
        return name + "{" + ",".join(f'{k}="{v}"' for k, v in labels) + "}"

    def openmetrics(self) -> str:
        lines = []
        for (name, labels), values in sorted(self.series.items()):
            selector = self._selector(name, labels)
            lines += [f"{selector} {value!r} {self.start + 60 * minute}"
                      for minute, value in enumerate(values)]
        return "\n".join([*lines, "# EOF", ""])

    def prometheus_text(self) -> str:
        """Prometheus exposition lines with millisecond timestamps (VictoriaMetrics import)."""
        lines = []
        for (name, labels), values in sorted(self.series.items()):
            selector = self._selector(name, labels)
            lines += [f"{selector} {value!r} {(self.start + 60 * minute) * 1000}"
                      for minute, value in enumerate(values)]
        return "\n".join([*lines, ""])

    def input_series(self) -> list[dict]:
        return [{"series": self._selector(name, labels),
                 "values": " ".join(repr(v) for v in values)}
                for (name, labels), values in sorted(self.series.items())]


def _counter(per_minute: list[float]) -> list[float]:
    total, values = 0.0, []
    for increment in per_minute:
        total += increment
        values.append(total)
    return values


def build(start: int) -> History:
    history = History(start)
    minutes = range(MINUTES)
    for instance in ("i1", "i2"):
        history.add("up", {"instance": instance},
                    [0.0 if instance == "i2" and _in(m, 300, 320) else 1.0 for m in minutes])
        memory = []
        for m in minutes:
            value = 200 * MIB
            if instance == "i2" and _in(m, 60, 100):
                value = 600 * MIB
            if instance == "i1" and _in(m, 200, 203):
                value = 2048 * MIB
            memory.append(float(value))
        history.add("process_resident_memory_bytes", {"instance": instance}, memory)
    requests = RPS * 60
    errors = [requests / 2 if _in(m, 150, 180) else 0.0 for m in minutes]
    slow = [_in(m, 240, 270) for m in minutes]
    for code, share in (("200", [requests - e for e in errors]), ("500", errors)):
        labels = {"instance": "i1", "code": code}
        history.add("http_request_duration_seconds_count", labels, _counter(share))
        history.add("http_request_duration_seconds_sum", labels, _counter(
            [n * (0.8 if s else 0.02) for n, s in zip(share, slow, strict=True)]))
        for le in BUCKETS:
            fast_bucket = float(le) >= 0.05 if le != "+Inf" else True
            slow_bucket = le == "+Inf" or float(le) >= 1
            history.add("http_request_duration_seconds_bucket", {**labels, "le": le},
                        _counter([n if (slow_bucket if s else fast_bucket) else 0.0
                                  for n, s in zip(share, slow, strict=True)]))
    history.add("cache_hits_total", {"instance": "i1", "cache": "l1"},
                _counter([0.95 * requests] * MINUTES))
    history.add("cache_misses_total", {"instance": "i1", "cache": "l1"},
                _counter([0.05 * requests] * MINUTES))
    return history
