"""`watchkeeper import openslo FILE`: OpenSLO SLO documents to a watchkeeper spec.

Reads ``openslo/v1`` SLOs with an inline ratioMetric indicator (good/total or bad/total,
Prometheus queries, ``counter: true`` for raw counters) and a rolling timeWindow, and Sloth's
``openslo/v1alpha`` SLOs (ratioMetrics with ``{{.window}}`` queries, timeWindows in days).
Service and SLO names carry over. Every SLO gets watchkeeper's burn-rate alerts, as a native
one would (Sloth's own OpenSLO import generates none). Anything else (calendar windows,
timeslice budgeting, thresholdMetric, indicatorRef, several objectives) is an error.
"""

from __future__ import annotations

from watchkeeper.importers import (
    Context,
    Document,
    guess_selector,
    read_documents,
    render,
    window_placeholder,
)

UNITS = {"Second": 1, "Minute": 60, "Hour": 3600, "Day": 86400, "Week": 604800}
SHORT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def convert(path: str) -> str:
    ctx = Context(str(path))
    services: dict[str, dict] = {}
    for doc in read_documents(path):
        slo = _document(ctx, doc)
        if slo is None:
            continue
        name, body = slo
        service = services.setdefault(name, {"name": name, "selector": {}, "language": "go",
                                             "slos": []})
        service["slos"].append(body)
    for service in services.values():
        queries = [q for slo in service["slos"] for q in slo["indicator"]["events"].values()]
        service["selector"], found = guess_selector(queries, service["name"])
        if not found:
            ctx.notes.append(f"service {service['name']}: selector {service['selector']} is a "
                             "guess; set it to the service's scrape job")
    if services:
        ctx.notes.append("language go only picks runtime metric names; SLOs do not read it")
    return render(list(services.values()), ctx, "OpenSLO")


def _document(ctx: Context, doc: Document) -> tuple[str, dict] | None:
    data = doc.data
    if not isinstance(data, dict) or data.get("kind") != "SLO":
        kind = data.get("kind") if isinstance(data, dict) else None
        ctx.error(doc, ("kind",), f"only kind SLO is imported, got {kind!r}"
                  + ("; put the indicator inline in the SLO" if kind == "SLI" else ""))
        return None
    version = data.get("apiVersion")
    if version not in ("openslo/v1", "openslo/v1alpha"):
        ctx.error(doc, ("apiVersion",), f"expected openslo/v1 or openslo/v1alpha, got "
                  f"{version!r}")
        return None
    spec = data.get("spec")
    name = (data.get("metadata") or {}).get("name")
    if not isinstance(spec, dict) or not isinstance(name, str):
        ctx.error(doc, ("spec",) if not isinstance(spec, dict) else ("metadata", "name"),
                  "missing")
        return None
    service = spec.get("service")
    if not isinstance(service, str):
        ctx.error(doc, ("spec", "service"), "missing service name")
        return None
    budgeting = spec.get("budgetingMethod", "Occurrences")
    if budgeting != "Occurrences":
        ctx.error(doc, ("spec", "budgetingMethod"), f"{budgeting} budgeting has no "
                  "watchkeeper equivalent; only Occurrences (good events over all events)")
    parts = (_v1 if version == "openslo/v1" else _v1alpha)(ctx, doc, spec)
    if parts is None:
        return None
    window, target, indicator = parts
    body: dict = {"name": name, "objective": f"{target * 100:.10g}%", "window": window,
                  "indicator": indicator}
    if spec.get("description"):
        body["description"] = str(spec["description"]).strip()
    if spec.get("alertPolicies"):
        ctx.notes.append(f"{name}: alertPolicies ignored; watchkeeper generates its "
                         "multiwindow multi-burn-rate alerts for every SLO")
    return service, body


def _objective(ctx: Context, doc: Document, spec: dict, key: str) -> tuple[dict, float] | None:
    objectives = spec.get(key)
    if not isinstance(objectives, list) or len(objectives) != 1:
        ctx.error(doc, ("spec", key), "expected exactly one objective (split several into "
                  "one SLO each)")
        return None
    objective = objectives[0]
    target = objective.get("target") if isinstance(objective, dict) else None
    if isinstance(target, bool) or not isinstance(target, int | float) or not 0 < target < 1:
        ctx.error(doc, ("spec", key, 0, "target"), "expected a target between 0 and 1, "
                  "such as 0.999")
        return None
    return objective, float(target)


def _v1(ctx: Context, doc: Document, spec: dict) -> tuple[str, float, dict] | None:
    if "indicatorRef" in spec:
        ctx.error(doc, ("spec", "indicatorRef"), "referenced SLIs are not imported; put the "
                  "SLI inline under spec.indicator")
        return None
    window = _v1_window(ctx, doc, spec.get("timeWindow"))
    picked = _objective(ctx, doc, spec, "objectives")
    ratio = (((spec.get("indicator") or {}).get("spec") or {}).get("ratioMetric"))
    loc = ("spec", "indicator", "spec", "ratioMetric")
    if not isinstance(ratio, dict):
        ctx.error(doc, loc[:3], "expected an inline indicator with a ratioMetric "
                  "(thresholdMetric has no event counts to burn a budget with)")
        return None
    if window is None or picked is None:
        return None
    counter = bool(ratio.get("counter", False))
    queries = {}
    for key in ("good", "bad", "total"):
        if key in ratio:
            query = _v1_query(ctx, doc, (*loc, key), ratio[key], counter)
            if query is None:
                return None
            queries[key] = query
    indicator = _events(ctx, doc, loc, queries)
    return (window, picked[1], indicator) if indicator else None


def _v1_window(ctx: Context, doc: Document, windows: object) -> str | None:
    loc = ("spec", "timeWindow")
    if not isinstance(windows, list) or len(windows) != 1 or not isinstance(windows[0], dict):
        ctx.error(doc, loc, "expected one time window")
        return None
    window = windows[0]
    if not window.get("isRolling", False) or "calendar" in window:
        ctx.error(doc, (*loc, 0), "calendar windows have no watchkeeper equivalent; only "
                  "rolling windows (isRolling: true)")
        return None
    duration = str(window.get("duration", ""))
    if not duration[:-1].isdigit() or duration[-1:] not in SHORT:
        ctx.error(doc, (*loc, 0, "duration"), f"expected a duration such as 28d, got "
                  f"{duration!r}")
        return None
    return duration


def _v1_query(ctx: Context, doc: Document, loc: tuple, metric: object,
              counter: bool) -> str | None:
    source = (metric or {}).get("metricSource") if isinstance(metric, dict) else None
    if not isinstance(source, dict) or str(source.get("type", "")).lower() != "prometheus":
        ctx.error(doc, (*loc, "metricSource", "type"), "only Prometheus metric sources "
                  "can be imported")
        return None
    query = (source.get("spec") or {}).get("query")
    if not isinstance(query, str) or not query.strip():
        ctx.error(doc, (*loc, "metricSource", "spec", "query"), "missing query")
        return None
    query = window_placeholder(query.strip())
    if counter:
        return f"sum(rate({query}[{{{{window}}}}]))"
    if "{{window}}" not in query:
        ctx.error(doc, (*loc, "metricSource", "spec", "query"), "not a counter (counter: "
                  "true) and no {{window}} for the rate window; the events per second "
                  "cannot be computed from it")
        return None
    return query


def _v1alpha(ctx: Context, doc: Document, spec: dict) -> tuple[str, float, dict] | None:
    windows = spec.get("timeWindows")
    loc = ("spec", "timeWindows")
    if not isinstance(windows, list) or len(windows) != 1 or not isinstance(windows[0], dict):
        ctx.error(doc, loc, "expected one time window")
        return None
    window = windows[0]
    if window.get("isRolling") is False or "calendar" in window:
        ctx.error(doc, (*loc, 0), "calendar windows have no watchkeeper equivalent")
        return None
    unit, count = window.get("unit"), window.get("count")
    if unit not in UNITS or isinstance(count, bool) or not isinstance(count, int):
        ctx.error(doc, (*loc, 0), "expected count and unit (Day, Week...)")
        return None
    picked = _objective(ctx, doc, spec, "objectives")
    if picked is None:
        return None
    objective, target = picked
    ratio = objective.get("ratioMetrics")
    rloc = ("spec", "objectives", 0, "ratioMetrics")
    if not isinstance(ratio, dict):
        ctx.error(doc, rloc, "expected ratioMetrics with good (or bad) and total queries")
        return None
    queries = {}
    for key in ("good", "bad", "total"):
        if key in ratio:
            query = (ratio[key] or {}).get("query") if isinstance(ratio[key], dict) else None
            if not isinstance(query, str) or not query.strip():
                ctx.error(doc, (*rloc, key, "query"), "missing query")
                return None
            queries[key] = window_placeholder(query.strip())
    indicator = _events(ctx, doc, rloc, queries)
    seconds = count * UNITS[unit]
    days = f"{seconds // 86400}d" if seconds % 86400 == 0 else f"{seconds}s"
    return (days, target, indicator) if indicator else None


def _events(ctx: Context, doc: Document, loc: tuple, queries: dict[str, str]) -> dict | None:
    """bad/total as they are, good/total as (total - good)/total."""
    if "total" not in queries or ("good" in queries) == ("bad" in queries):
        ctx.error(doc, loc, "expected total and exactly one of good or bad")
        return None
    errors = queries.get("bad") or f"({queries['total']}) - ({queries['good']})"
    return {"events": {"errors": errors, "total": queries["total"]}}
