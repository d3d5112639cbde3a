"""`watchkeeper import sloth FILE`: Sloth ``prometheus/v1`` specs to a watchkeeper spec.

Maps service, labels, SLO names, objectives, descriptions, events and raw SLIs, alert names,
labels and annotations, and disabled page/ticket alerts. Sloth's 30-day default period and
its alerts' lack of a `for` are kept, so the imported SLO pages and tickets when Sloth's
would. Sloth's `severity` labels are replaced by watchkeeper's (critical pages, warning
tickets; routing reads those), which a note says. SLI plugins have no equivalent: error.
"""

from __future__ import annotations

from watchkeeper.importers import (
    Context,
    Document,
    guess_selector,
    percent,
    read_documents,
    render,
    window_placeholder,
)

VERSION = "prometheus/v1"
PAGE_TIERS = ("page-1h", "page-6h")
TICKET_TIERS = ("ticket-1d", "ticket-3d")
KNOWN = {"version", "service", "labels", "slos"}
SLO_KEYS = {"name", "objective", "description", "labels", "sli", "alerting"}
ALERTING_KEYS = {"name", "labels", "annotations", "page_alert", "ticket_alert"}


def convert(path: str) -> str:
    ctx = Context(str(path))
    services: dict[str, dict] = {}
    for doc in read_documents(path):
        _document(ctx, doc, services)
    return render(list(services.values()), ctx, "Sloth prometheus/v1")


def _document(ctx: Context, doc: Document, services: dict[str, dict]) -> None:
    data = doc.data
    if not isinstance(data, dict):
        ctx.error(doc, (), "expected a Sloth spec (a mapping with version, service, slos)")
        return
    if data.get("version") != VERSION:
        ctx.error(doc, ("version",), f"expected {VERSION!r} (Sloth's Prometheus spec), got "
                  f"{data.get('version')!r}; for OpenSLO use `watchkeeper import openslo`")
        return
    for key in sorted(set(data) - KNOWN):
        ctx.error(doc, (key,), "unknown Sloth field; cannot translate it")
    name = data.get("service")
    if not isinstance(name, str):
        ctx.error(doc, ("service",), "missing service name")
        return
    slos = [_slo(ctx, doc, i, slo) for i, slo in enumerate(data.get("slos") or [])]
    if not slos:
        ctx.error(doc, ("slos",), "no SLOs to import")
    queries = [q for slo in slos if slo for q in _queries(slo)]
    service = services.get(name)
    if service is None:
        selector, found = guess_selector(queries, name)
        if not found:
            ctx.notes.append(f"service {name}: selector {selector} is a guess (the queries "
                             "name no single job); set it to the service's scrape job, "
                             "which watchkeeper also watches for targets going down")
        service = services[name] = {"name": name, "selector": selector, "language": "go"}
        if data.get("labels"):
            service["labels"] = dict(data["labels"])
            ctx.notes.append(f"service {name}: labels go on every alert (Sloth also put them "
                             "on recordings; watchkeeper's carry service and slo)")
        service["slos"] = []
        ctx.notes.append(f"service {name}: language go only picks runtime metric names; "
                         "SLOs do not read it")
    elif data.get("labels") and data["labels"] != service.get("labels"):
        ctx.error(doc, ("labels",), f"service {name} appears twice with different labels")
    service["slos"].extend(slo for slo in slos if slo)


def _queries(slo: dict) -> list[str]:
    indicator = slo["indicator"]
    if "events" in indicator:
        return list(indicator["events"].values())
    return [indicator["error_ratio"]]


def _slo(ctx: Context, doc: Document, i: int, slo: object) -> dict | None:
    loc = ("slos", i)
    if not isinstance(slo, dict):
        ctx.error(doc, loc, "expected an SLO mapping")
        return None
    for key in sorted(set(slo) - SLO_KEYS):
        ctx.error(doc, (*loc, key), "unknown Sloth SLO field; cannot translate it")
    objective = slo.get("objective")
    if isinstance(objective, bool) or not isinstance(objective, int | float):
        ctx.error(doc, (*loc, "objective"), "expected a percentage such as 99.9")
        return None
    out: dict = {"name": slo.get("name"), "objective": percent(objective)}
    indicator = _indicator(ctx, doc, (*loc, "sli"), slo.get("sli"))
    if indicator is None:
        return None
    out["indicator"] = indicator
    if slo.get("description"):
        out["description"] = str(slo["description"]).strip()
    if slo.get("labels"):
        out["labels"] = dict(slo["labels"])
    alerting = _alerting(ctx, doc, (*loc, "alerting"), slo.get("alerting") or {}, out)
    if alerting is not None:
        out["alerting"] = alerting
    return out


def _indicator(ctx: Context, doc: Document, loc: tuple, sli: object) -> dict | None:
    if not isinstance(sli, dict) or len(sli) != 1:
        ctx.error(doc, loc, "expected exactly one of events, raw or plugin")
        return None
    kind, body = next(iter(sli.items()))
    if kind == "events" and isinstance(body, dict) and set(body) == {"error_query",
                                                                      "total_query"}:
        return {"events": {"errors": window_placeholder(body["error_query"]).strip(),
                           "total": window_placeholder(body["total_query"]).strip()}}
    if kind == "raw" and isinstance(body, dict) and set(body) == {"error_ratio_query"}:
        return {"error_ratio": window_placeholder(body["error_ratio_query"]).strip()}
    if kind == "plugin":
        ctx.error(doc, (*loc, "plugin"), "Sloth SLI plugins run Go code watchkeeper cannot "
                  "run; write the plugin's queries as an events SLI and import that")
        return None
    ctx.error(doc, (*loc, kind), "expected events {error_query, total_query} or raw "
              "{error_ratio_query}")
    return None


def _alerting(ctx: Context, doc: Document, loc: tuple, alerting: dict,
              slo: dict) -> dict | None:
    for key in sorted(set(alerting) - ALERTING_KEYS):
        ctx.error(doc, (*loc, key), "unknown Sloth alerting field; cannot translate it")
    out: dict = {}
    if alerting.get("name"):
        out["name"] = alerting["name"]
    for key in ("labels", "annotations"):
        if alerting.get(key):
            out[key] = dict(alerting[key])
    tiers: dict = {}
    for sloth_key, ours, tier_names in (("page_alert", "page", PAGE_TIERS),
                                        ("ticket_alert", "ticket", TICKET_TIERS)):
        policy = dict(alerting.get(sloth_key) or {})
        for key in sorted(set(policy) - {"disable", "labels", "annotations"}):
            ctx.error(doc, (*loc, sloth_key, key), "unknown Sloth alert field")
        if policy.get("disable"):
            tiers.update(dict.fromkeys(tier_names, False))
        labels = dict(policy.get("labels") or {})
        wanted = "critical" if ours == "page" else "warning"
        if labels.get("severity") == wanted:
            labels.pop("severity")
        elif "severity" in labels:
            ctx.notes.append(
                f"{slo['name']}: {sloth_key}.labels.severity {labels.pop('severity')!r} "
                f"replaced by severity={wanted} "
                "(watchkeeper routes pages on critical, tickets on warning)")
        part = {k: v for k, v in (("labels", labels),
                                  ("annotations", dict(policy.get("annotations") or {}))) if v}
        if part:
            out[ours] = part
    if len(tiers) == 4:
        return False  # type: ignore[return-value]  # every alert disabled
    # Sloth's alerts have no `for`: each tier fires as soon as both its windows burn.
    out["tiers"] = {name: tiers.get(name, {"for": "0s"}) for name in (*PAGE_TIERS,
                                                                     *TICKET_TIERS)}
    return out
