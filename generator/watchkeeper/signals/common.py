"""Helpers shared by the signal modules: test timing, recordings of histograms and traffic."""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Iterator, Mapping
from decimal import Decimal

from watchkeeper import promql
from watchkeeper.model import CountThresholds, Leak, Recording, Series, Service, Thresholds
from watchkeeper.signals.threshold import Synthesis
from watchkeeper.units import format_number, prometheus_duration

INSTANCE = "host-a:9090"  # the instance label of synthesized test series
SAMPLES_PER_STEP = 1000  # events per test step: enough to clear any sensible min_events


def test_step(service: Service) -> float:
    """The promtool test interval: as coarse as the service's windows and `for`s allow.

    promtool evaluates every listed rule at every step, so the step sets most of a test's
    cost. A rate needs a few samples in its window (at least three: half the window) and
    a leak's quarter-window a few too. Each alert is checked one step before its `for`
    elapses and when it has, so the step is at most half of every non-zero `for`: the
    checks then still prove the alert waits more than half its `for` and no longer than
    it (a `for` halved by hand fails them). At most 2m30s.
    """
    if service.derived is not None:  # one signal's view of the service (parts): drawn already
        return service.derived.test_step
    finest = min(service.rate_window / 2, _half_shortest_for(service))
    for budget in service.budgets.values():
        if isinstance(budget, CountThresholds) and budget.leak is not None:
            finest = min(finest, budget.leak.window / 8)
    for step in (150.0, 120.0, 60.0, 30.0, 15.0, 10.0, 5.0, 1.0):
        if step <= finest:
            return step
    return 1.0


_FORS: dict[int, tuple[object, float]] = {}  # id(budgets) → (budgets, half shortest `for`)


def _half_shortest_for(service: Service) -> float:
    """Half the shortest non-zero `for` of the service's alerts outside leaks and SLOs (which
    test at steps of their own): the service's own `for` and every budget's. Services
    with equal budgets share one budgets mapping (spec.Shared), so each is walked once."""
    budgets = service.budgets
    known = _FORS.get(id(budgets))
    if known is None or known[0] is not budgets:
        if len(_FORS) > 256:
            _FORS.clear()
        fors = [for_ for for_ in _fors(budgets) if for_ > 0]
        known = _FORS[id(budgets)] = (budgets, min(fors, default=math.inf) / 2)
    own = service.for_ / 2 if service.for_ > 0 else math.inf
    return min(own, known[1])


def _fors(value: object) -> Iterator[float]:
    """Every `Thresholds.for_` within a resolved budget (tuples, mappings, dataclasses)."""
    if isinstance(value, Thresholds):
        yield value.for_
    elif isinstance(value, tuple | list):
        for item in value:
            yield from _fors(item)
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _fors(item)
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        for item in dataclasses.fields(value):
            yield from _fors(getattr(value, item.name))


def leak_test_step(service: Service) -> float:
    """The promtool step for leak scenarios, which span several leak windows (hours).

    Coarser than `test_step`: a few samples per quarter of the shortest leak window are
    what the steady-growth condition needs, and never coarser than the leak's `for`, so
    the check one step before it elapses stays meaningful. The rate windows of other
    signals do not matter: their scenarios are in other test files.
    """
    if service.derived is not None:  # one signal's view of the service (parts): drawn already
        return service.derived.leak_test_step
    finest = 300.0
    for budget in service.budgets.values():
        if isinstance(budget, CountThresholds) and budget.leak is not None:
            finest = min(finest, budget.leak.window / 8, budget.leak.for_ or finest)
    for step in (300.0, 120.0, 60.0, 30.0, 15.0, 10.0, 5.0, 1.0):
        if step <= finest:
            return step
    return 1.0


def window(service: Service) -> str:
    return prometheus_duration(service.rate_window)


def service_selector(record: str, service: Service, **extra: str) -> str:
    """Selector of a per-service recording: ``record{service="x"}``."""
    return record + promql.matchers({"service": service.name}, **extra)


def counter(per_step: float, samples: int) -> str:
    """promtool notation of a counter growing by `per_step` each step: ``0+1000x12``."""
    return f"0+{format_number(per_step)}x{samples}"


def gauge(value: float, samples: int) -> str:
    return f"{format_number(value)}x{samples}"


def target_labels(service: Service) -> dict[str, str]:
    """Labels of a synthesized series scraped from one instance of the service."""
    return {**service.selector.example, "instance": INSTANCE}


# --- Request rate and traffic guard ------------------------------------------------------------


def rate_recording(service: Service, metric: str) -> Recording:
    """Events per second of the whole service, e.g. requests from a histogram's _count."""
    sel = promql.matchers(service.selector)
    return Recording(
        record=f"service:{metric}:rate{window(service)}",
        expr=f"sum(rate({metric}{sel}[{window(service)}]))",
        labels={"service": service.name},
    )


def rate_selector(service: Service, metric: str) -> str:
    """Selector of the service-wide rate recording of `metric` (see `rate_recording`)."""
    return service_selector(f"service:{metric}:rate{window(service)}", service)


MIN_EVENTS = 10  # default guard of ratios (errors, hit ratio, job failures)
EVENTS_BEYOND = 5  # default guard of a q-quantile: this many events expected above it


def min_events(service: Service, q: float | None = None) -> int:
    """Fewest events per rate window for a value to be judged: the spec's `min_events`
    when set, else 10 for a ratio and, for a q-quantile, enough events that 5 of them lie
    above it (5 / (1 − q): 500 for a p99, 10 for a p50) — a p99 over 10 requests would be
    the slowest request, not a percentile."""
    if service.min_events is not None:
        return service.min_events
    if q is None:
        return MIN_EVENTS
    return max(MIN_EVENTS, math.ceil(EVENTS_BEYOND / (1 - q) - 1e-9))


def traffic_guard(service: Service, rate: str, on: str = "service",
                  q: float | None = None) -> str:
    """PromQL that holds only when the events-per-second `rate` selector, over the rate
    window, adds up to at least `min_events` (see :func:`min_events`).

    Quantiles and ratios over a handful of events are noise; this keeps a single slow
    request from paging anyone.
    """
    return (f"on({on}) {rate} * {format_number(service.rate_window)} "
            f">= {min_events(service, q)}")


def traffic_per_step(service: Service, step: float, q: float | None = None) -> float:
    """Events per step that make the guard pass comfortably."""
    needed = min_events(service, q) * step / service.rate_window
    return max(SAMPLES_PER_STEP, 1000 * math.ceil(needed * 4 / 1000))


def sparse_per_step(service: Service, step: float, q: float | None = None) -> float:
    """Events per step that leave the guard short: half of `min_events` per window."""
    return min_events(service, q) / 2 * step / service.rate_window


# --- Histograms --------------------------------------------------------------------------------


def quantile_record(service: Service, histogram: str, quantile: str,
                    level: str = "service") -> str:
    """Name of the recording holding one quantile: ``service:<hist>:p99_rate5m``."""
    return f"{level}:{histogram}:{quantile}_rate{window(service)}"


def quantile_recordings(service: Service, histogram: str, quantiles: list[tuple[str, float]],
                        level: str = "service", aggregate: str = "sum by (le)",
                        ) -> list[Recording]:
    """Bucket rates summed to `level` by `aggregate`, then one recording per quantile.

    ``level="service"`` sums every instance (request latency); ``level="instance"`` with
    ``aggregate="sum without (generation)"`` keeps each instance (GC pauses).
    """
    w = window(service)
    sel = promql.matchers(service.selector)
    buckets = f"{level}_le:{histogram}_bucket:rate{w}"
    records = [Recording(buckets, f"{aggregate} (rate({histogram}_bucket{sel}[{w}]))",
                         {"service": service.name})]
    for name, q in quantiles:
        records.append(Recording(
            record=quantile_record(service, histogram, name, level),
            expr=f"histogram_quantile({format_number(q)}, "
                 f"{service_selector(buckets, service)})",
            labels={"service": service.name},
        ))
    return records


def bracket(value: float, spread: float) -> tuple[float, float]:
    """Bucket bounds ``value·(1 ∓ spread)`` whose midpoint is `value` exactly in decimal.

    histogram_quantile interpolates to the midpoint of the pair, and the tests compare it
    rounded to a micro-unit (`rule_tests.ROUND_TO`) and rendered to 4 significant digits.
    Rounding both bounds to 6 significant digits on their own put the midpoint of e.g.
    0.552857 and 1.24714 at 0.8999985: a tie, which Go's and Python's floats (a few ulps
    apart) broke apart. Only the lower bound is rounded; the upper one is its mirror.
    """
    low = Decimal(f"{value * (1 - spread):.6g}")
    return float(low), float(2 * Decimal(repr(value)) - low)


def histogram_synthesis(histogram: str, labels: dict[str, str], q: float, value: float,
                        per_step: float, samples: int, result: dict[str, str]) -> Synthesis:
    """Bucket series whose q-quantile is `value` (the bounds' midpoint, see `bracket`).

    Two finite buckets (value/2 and 3·value/2) hold the observations; the lower one is filled
    so that rank q·N falls in the middle of the upper one, where histogram_quantile's linear
    interpolation lands on their midpoint.
    """
    low, high = bracket(value, 0.5)
    below = round(max(0.0, 2 * q - 1) * per_step, 9)
    exact = low + (high - low) * (q * per_step - below) / (per_step - below)
    return Synthesis(
        series=(
            Series(promql.series(f"{histogram}_bucket", {**labels, "le": format_number(low)}),
                   counter(below, samples)),
            Series(promql.series(f"{histogram}_bucket", {**labels, "le": format_number(high)}),
                   counter(per_step, samples)),
            Series(promql.series(f"{histogram}_bucket", {**labels, "le": "+Inf"}),
                   counter(per_step, samples)),
            Series(promql.series(f"{histogram}_count", labels), counter(per_step, samples)),
        ),
        value=exact,
        labels=result,
    )


def quantiles_synthesis(histogram: str, labels: dict[str, str],
                        targets: list[tuple[float, float]], per_step: float, samples: int,
                        count: bool = True) -> tuple[tuple[Series, ...], list[float]] | None:
    """Bucket series whose q-quantiles are the given values at once: `targets` are
    (q, value) pairs; returns the series and each quantile's exact value (in the order
    given), or None when the values do not rise with q (no histogram has them).

    Each quantile gets a bucket pair bracketing its value, holding its rank in the middle
    (as `histogram_synthesis` does for one), the pairs far enough apart in both bound and
    count not to overlap. `count` False leaves the `_count` series out (another signal's
    part writes it, split by status code: see `threshold.build_joint`).
    """
    order = sorted(range(len(targets)), key=lambda i: targets[i][0])
    qs = [targets[i][0] for i in order]
    values = [targets[i][1] for i in order]
    if any(b <= a for a, b in itertools.pairwise(qs)) or \
            any(b <= a for a, b in itertools.pairwise(values)) or qs[-1] >= 1:
        return None
    ranks = [round(q * per_step, 9) for q in qs]
    edges = [0.0, *ranks, per_step]
    bounds: list[tuple[float, float]] = []  # (le, cumulative count per step)
    exact: dict[int, float] = {}
    for k, (rank, value) in enumerate(zip(ranks, values, strict=True)):
        half = min(rank - edges[k], edges[k + 2] - rank) / 2
        spread = min([0.5] + [0.9 * abs(value - other) / (value + other)
                              for other in values[max(0, k - 1):k + 2] if other != value])
        low, high = bracket(value, spread)
        below, upto = round(rank - half, 9), round(rank + half, 9)
        bounds += [(low, below), (high, upto)]
        exact[order[k]] = low + (high - low) * (rank - below) / (upto - below)
    les = [le for le, _ in bounds]
    if any(b <= a for a, b in itertools.pairwise(les)) or les[0] <= 0:
        return None
    series = [Series(promql.series(f"{histogram}_bucket", {**labels, "le": format_number(le)}),
                     counter(cumulative, samples)) for le, cumulative in bounds]
    series.append(Series(promql.series(f"{histogram}_bucket", {**labels, "le": "+Inf"}),
                         counter(per_step, samples)))
    if count:
        series.append(Series(promql.series(f"{histogram}_count", labels),
                             counter(per_step, samples)))
    return tuple(series), [exact[i] for i in range(len(targets))]


def predict_record(metric: str, leak: Leak) -> str:
    """The predict_linear recording of a leak budget (leak alerts read it, charts draw it)."""
    return (f"instance:{metric}:predict_linear{prometheus_duration(leak.window)}_"
            f"{prometheus_duration(leak.horizon)}")


def history_guard(service: Service) -> str:
    """PromQL that holds once the service has been scraped for a whole rate window.

    An absolute rate (requests/s, slow queries/s) is underestimated until its window is
    full of samples, after a Prometheus restart or a service's first deploy; a floor would
    fire on that alone. Ratios and quantiles need no such guard: both sides shrink alike.
    """
    up = service.metric("up") + promql.matchers(service.selector)
    return f"on() count({up} offset {window(service)}) > 0"


def history_series(service: Service, samples: int) -> Series:
    """The `up` series the history guard reads, for a synthesized scenario."""
    return Series(promql.series(service.metric("up"), target_labels(service)),
                  gauge(1, samples))


def window_steps(service: Service, step: float) -> int:
    """Evaluation steps until the history guard holds (a full rate window)."""
    return math.ceil(service.rate_window / step - 1e-9)
