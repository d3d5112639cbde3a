"""Cache hit ratio per cache: hits over lookups (hits + misses), as a ratio of summed rates."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from pydantic import AfterValidator, Field
from watchkeeper import naming, promql
from watchkeeper.budgets import LowRatioThresholds, Strict
from watchkeeper.model import (
    Chart,
    Piece,
    Query,
    Recording,
    Scenario,
    Series,
    Service,
    Thresholds,
)
from watchkeeper.signals import common
from watchkeeper.signals.base import Key, Signal
from watchkeeper.signals.panels import budget_chart
from watchkeeper.signals.threshold import (
    RATIO,
    Synthesis,
    ThresholdSignal,
    build_alerts,
    build_scenarios,
    side_by_side,
)


@dataclass(frozen=True)
class Cache:
    """One cache's resolved budget: the `cache` label value and its hit-ratio floor."""

    name: str
    hit_ratio: Thresholds


class CacheSpec(Strict):
    """One cache, told apart by the value of the cache label (`metrics.cache_label`)."""

    name: Annotated[str, Field(min_length=1, description="Value of the cache label.")]
    hit_ratio: LowRatioThresholds = Field(description="Hits over lookups; lower is worse.")

    def resolve(self, default_for: float) -> Cache:
        return Cache(self.name, self.hit_ratio.resolve(default_for))


def _unique(caches: list[CacheSpec]) -> list[CacheSpec]:
    names = [cache.name for cache in caches]
    if duplicates := sorted({name for name in names if names.count(name) > 1}):
        raise ValueError(f"cache names must be unique, repeated: {', '.join(duplicates)}")
    return caches


KEY = Key(None, "caches", Annotated[list[CacheSpec], AfterValidator(_unique)],
          "Caches and their hit-ratio budgets, from the cache hit and miss counters.",
          default=[])
ALERT = "CacheHitRatioLow"
METRICS = {"cache_hits": "cache_hits_total", "cache_misses": "cache_misses_total",
           "cache_label": "cache"}


def records(service: Service) -> dict[str, str]:
    """Recording names: hits, misses, lookups and hit ratio per cache label value."""
    w = common.window(service)
    return {kind: f"service_cache:cache_{kind}:rate{w}"
            for kind in ("hits", "misses", "lookups", "hit_ratio")}


def recordings(service: Service) -> list[Recording]:
    """Hit and miss rates per cache, then lookups and the hit ratio from them.

    A cache that never missed (or never hit) has only one of the two counters; each side
    falls back to zero when only the other exists, so such a cache shows 100% (or 0%)
    instead of vanishing from the ratio and its alert.
    """
    w = common.window(service)
    names = records(service)
    sel = promql.matchers(service.selector)
    by = f"sum by ({service.metric('cache_label')})"
    hits, misses = (common.service_selector(names[k], service) for k in ("hits", "misses"))
    lookups = common.service_selector(names["lookups"], service)
    return [
        Recording(names["hits"], f"{by} (rate({service.metric('cache_hits')}{sel}[{w}]))",
                  {"service": service.name}),
        Recording(names["misses"], f"{by} (rate({service.metric('cache_misses')}{sel}[{w}]))",
                  {"service": service.name}),
        Recording(names["lookups"], f"({hits} or 0 * {misses})\n+ ({misses} or 0 * {hits})",
                  {"service": service.name}),
        Recording(names["hit_ratio"], f"({hits} or 0 * {misses})\n/\n{lookups}",
                  {"service": service.name}),
    ]


def _signal(service: Service, cache: Cache, step: float) -> ThresholdSignal:
    label, hits_metric = service.metric("cache_label"), service.metric("cache_hits")
    misses_metric = service.metric("cache_misses")
    names = records(service)
    labels = {**common.target_labels(service), label: cache.name}
    result = {label: cache.name, "service": service.name}

    def synthesize(value: float, samples: int, per_step: float = common.SAMPLES_PER_STEP):
        hits = round(value * per_step, 9)
        return Synthesis(
            series=(Series(promql.series(hits_metric, labels), common.counter(hits, samples)),
                    Series(promql.series(misses_metric, labels),
                           common.counter(per_step - hits, samples))),
            value=hits / per_step,
            labels=result,
        )

    def sparse(value: float, samples: int) -> Synthesis:
        return synthesize(value, samples, common.sparse_per_step(service, step))

    guard = common.traffic_guard(
        service,
        common.service_selector(names["lookups"], service, **{label: cache.name}),
        on=f"service, {label}")
    selector = common.service_selector(names["hit_ratio"], service, **{label: cache.name})
    return ThresholdSignal(
        signal="cache",
        alert=ALERT,
        subject="cache hit ratio",
        where=f"of cache {{{label}}} in {{service}}",
        unit=RATIO,
        budget=cache.hit_ratio,
        value_expr=selector,
        guard=guard,
        synthesize=synthesize,
        sparse=sparse,
        onset_steps=1,
        recording=selector,
        upper_bound=1.0,
        over=f" over the last {common.window(service)}",
        labels=((label, cache.name),),
    )


def build(service: Service) -> list[Piece]:
    caches: tuple[Cache, ...] = service.budget(KEY.path) or ()
    if not caches:
        return []
    step = common.test_step(service)
    piece = Piece(group="cache", recordings=recordings(service))
    cases = []
    for cache in caches:
        sig = _signal(service, cache, step)
        piece.alerts.extend(build_alerts(sig, service))
        cases.append(build_scenarios(sig, service, step))
    piece.scenarios.extend(_side_by_side(cases))
    return [piece]


def _side_by_side(cases: list[list[Scenario]]) -> list[Scenario]:
    """Each cache's cases beside the other caches' (the n-th of each together): every rule
    reads one cache's series alone, and the alerts carry the cache label. Apart when the
    caches' cases do not line up (other `for`, other severities)."""
    if len(cases) < 2 or len({len(c) for c in cases}) != 1:
        return [s for c in cases for s in c]
    together = [side_by_side(list(level)) for level in zip(*cases, strict=True)]
    if any(s is None for s in together):
        return [s for c in cases for s in c]
    return [s for s in together if s is not None]


def charts(service: Service) -> list[Chart]:
    """Per cache: its hit ratio against the budget, then its hits and misses."""
    caches: tuple[Cache, ...] = service.budget(KEY.path) or ()
    names, label = records(service), service.metric("cache_label")
    result = []
    for index, cache in enumerate(caches):
        match = ((label, cache.name),)
        ratio = common.service_selector(names["hit_ratio"], service, **{label: cache.name})
        result.append(budget_chart(
            naming.CACHES, 1 + 2 * index, f"Cache {cache.name}: hit ratio", RATIO,
            f"Hits over lookups of cache {cache.name}. ", (Query(ratio, "hit ratio"),),
            cache.hit_ratio, ALERT, ratio, match=match))
        result.append(Chart(
            naming.CACHES, 2 + 2 * index, f"Cache {cache.name}: hits and misses", "ops",
            f"Hits and misses per second of cache {cache.name}.",
            tuple(Query(common.service_selector(names[kind], service, **{label: cache.name}),
                        kind) for kind in ("hits", "misses"))))
    return result


SIGNAL = Signal("cache", (KEY,), build, charts, METRICS)
