"""Cache hit ratio per cache: hits over lookups (hits + misses), as a ratio of summed rates."""

from __future__ import annotations

from watchkeeper import promql
from watchkeeper.dashboards import ids
from watchkeeper.model import Piece, Recording, Series
from watchkeeper.signals import common
from watchkeeper.signals.threshold import (
    RATIO,
    Synthesis,
    ThresholdSignal,
    build_alerts,
    build_scenarios,
)
from watchkeeper.spec import CacheSpec, Service


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
    m, w = service.metrics, common.window(service)
    names = records(service)
    sel = promql.matchers(service.selector)
    by = f"sum by ({m.cache_label})"
    hits, misses = (common.service_selector(names[k], service) for k in ("hits", "misses"))
    lookups = common.service_selector(names["lookups"], service)
    return [
        Recording(names["hits"], f"{by} (rate({m.cache_hits}{sel}[{w}]))",
                  {"service": service.name}),
        Recording(names["misses"], f"{by} (rate({m.cache_misses}{sel}[{w}]))",
                  {"service": service.name}),
        Recording(names["lookups"], f"({hits} or 0 * {misses})\n+ ({misses} or 0 * {hits})",
                  {"service": service.name}),
        Recording(names["hit_ratio"], f"({hits} or 0 * {misses})\n/\n{lookups}",
                  {"service": service.name}),
    ]


def _signal(service: Service, cache: CacheSpec, step: float) -> ThresholdSignal:
    m = service.metrics
    names = records(service)
    labels = {**common.target_labels(service), m.cache_label: cache.name}
    result = {m.cache_label: cache.name, "service": service.name}

    def synthesize(value: float, samples: int, per_step: float = common.SAMPLES_PER_STEP):
        hits = round(value * per_step, 9)
        return Synthesis(
            series=(Series(promql.series(m.cache_hits, labels), common.counter(hits, samples)),
                    Series(promql.series(m.cache_misses, labels),
                           common.counter(per_step - hits, samples))),
            value=hits / per_step,
            labels=result,
        )

    def sparse(value: float, samples: int) -> Synthesis:
        return synthesize(value, samples, common.sparse_per_step(service, step))

    guard = common.traffic_guard(
        service,
        common.service_selector(names["lookups"], service, **{m.cache_label: cache.name}),
        on=f"service, {m.cache_label}")
    selector = common.service_selector(names["hit_ratio"], service,
                                       **{m.cache_label: cache.name})
    return ThresholdSignal(
        signal="cache",
        alert="CacheHitRatioLow",
        subject="cache hit ratio",
        where=f"of cache {{{m.cache_label}}} in {{service}}",
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
        labels=((m.cache_label, cache.name),),
        panel=ids.cache_hit_ratio(service, cache.name),
    )


def build(service: Service) -> list[Piece]:
    if not service.caches:
        return []
    step = common.test_step(service)
    piece = Piece(group="cache", recordings=recordings(service))
    for cache in service.caches:
        sig = _signal(service, cache, step)
        piece.alerts.extend(build_alerts(sig, service))
        piece.scenarios.extend(build_scenarios(sig, service, step))
    return [piece]
