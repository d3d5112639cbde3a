"""Dashboard uids, panel ids and alert links: one pure module that builders and alerts share.

The dashboards place each panel at the id given here, and every alert's `dashboard_url`
is built from the same functions, so a link cannot point at a panel that moved.
Ids are fixed per section (HTTP 1xx, database 2xx, caches 3xx, runtime 4xx) so adding a
section to a service never renumbers the panels of another.
"""

from __future__ import annotations

import hashlib
import re

from watchkeeper.spec import QUANTILES, Service

UID_MAX = 40
UID_PATTERN = re.compile(r"^[a-z0-9-]{1,40}$")
UID_PREFIX = "wk-"
OVERVIEW_UID = "wk-overview"
MANAGED_TAG = "watchkeeper-managed"

AVAILABILITY = 1
ROWS = {"http": 100, "database": 200, "caches": 300, "runtime": 400, "slos": 500}
HTTP_REQUESTS, HTTP_ERRORS = 101, 102
DB_POOL, DB_POOL_WAITS = 201, 202
RUNTIME = {"memory": 401, "goroutines": 402, "threads": 403, "tasks": 404, "gc_pause": 405}


def dashboard_uid(service_name: str) -> str:
    """`wk-<service>`; names too long for Grafana's 40 characters keep a hash suffix."""
    uid = UID_PREFIX + service_name
    if len(uid) <= UID_MAX:
        return uid
    digest = hashlib.sha1(service_name.encode()).hexdigest()[:8]
    return f"{uid[: UID_MAX - 9].rstrip('-')}-{digest}"


def http_latency(quantile: str) -> int:
    return 110 + list(QUANTILES).index(quantile)


def db_latency(quantile: str) -> int:
    return 210 + list(QUANTILES).index(quantile)


def cache_hit_ratio(service: Service, cache: str) -> int:
    return 301 + 2 * [c.name for c in service.caches].index(cache)


def cache_traffic(service: Service, cache: str) -> int:
    return cache_hit_ratio(service, cache) + 1


SLO_PANELS = ("compliance", "budget", "burn", "events")


def slo_panel(service: Service, slo: str, panel: str) -> int:
    """Panels of one SLO, four per SLO in declaration order from 501."""
    index = [s.name for s in service.slos].index(slo)
    return 501 + len(SLO_PANELS) * index + SLO_PANELS.index(panel)


def dashboard_link(service: Service, panel: int | None) -> dict[str, str]:
    """The `dashboard_url` annotation of an alert shown by `panel`, when a grafana_url is set."""
    if not service.grafana_url or panel is None:
        return {}
    base = service.grafana_url.rstrip("/")
    uid = dashboard_uid(service.name)
    return {"dashboard_url": f"{base}/d/{uid}/{service.name}?viewPanel={panel}"}


def parse_link(url: str) -> tuple[str, int] | None:
    """(uid, panel id) of a `dashboard_url`, or None when it is not one of ours."""
    match = re.search(r"/d/([^/?#]+)(?:/[^?#]*)?\?(?:.*&)?viewPanel=(\d+)", url)
    return (match[1], int(match[2])) if match else None
