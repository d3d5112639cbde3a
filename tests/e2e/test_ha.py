"""High availability end to end: two Prometheus replicas (external label ``replica: a|b``,
dropped from alerts by examples/ha/prometheus-replica.yml) evaluate the generated rules and
send to two Alertmanagers clustered on 127.0.0.1 with the generated routing.

Checks, with real faults of the demo service: one notification per alert group at the webhook
(not one per replica or per peer); losing a Prometheus replica mid-incident keeps the alert
firing and it resolves normally; losing the Alertmanager peer that would notify first loses
neither the page nor the resolve; inhibition holds on every live peer; the killed peer,
restarted mid-incident, rejoins without re-sending the page. About 3 minutes on 2 cores.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import chain
import loadgen
import pytest
import servers
import stack
from chain import Key, require

RUN = "HA: 2 Prometheus replicas + 2 clustered Alertmanagers"
API = "demo-api"
GROUP_WAIT = 8.0  # examples/demo/spec.jsonnet defaults.alertmanager.group_wait
GROUP_INTERVAL = 5.0  # and its group_interval
PEER_TIMEOUT = 2.0  # stack.CLUSTER_TIMINGS --cluster.peer-timeout


@dataclass
class HAChain(chain.Chain):
    """The chain seen through every *live* replica and peer: an alert fires when a replica
    fires it, is held in Alertmanager when any peer holds it, and counts as inhibited only
    when every live peer suppresses it."""

    ha: stack.HAStack | None = None

    def live(self, daemons: dict[str, servers.Daemon]) -> list[servers.Daemon]:
        return [d for d in daemons.values() if d.running()]

    def evaluator_alerts(self) -> list[dict]:
        return [a for d in self.live(self.ha.replicas) for a in _alerts(d.url)]

    def alertmanager_alerts(self) -> list[dict]:
        return [a for d in self.live(self.ha.peers) for a in _am_alerts(d.url)]

    def suppressed(self) -> set[Key]:
        held = [{chain.key_of(a["labels"]) for a in _am_alerts(d.url)
                 if a["status"]["state"] == "suppressed" and a["status"]["inhibitedBy"]}
                for d in self.live(self.ha.peers)]
        return set.intersection(*held) if held else set()


def _alerts(url: str) -> list[dict]:
    _, body = servers.get(url + "/api/v1/alerts", timeout=5)
    return json.loads(body)["data"]["alerts"] or []


def _am_alerts(url: str) -> list[dict]:
    _, body = servers.get(url + "/api/v2/alerts", timeout=5)
    return json.loads(body)


def _cluster(url: str) -> dict:
    _, body = servers.get(url + "/api/v2/status", timeout=5)
    return json.loads(body)["cluster"]


def poll(what: str, condition: Callable[[], object], timeout: float) -> float:
    """Seconds until ``condition()`` is truthy; fails naming ``what`` after ``timeout``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if condition():
            return time.monotonic() - start
        time.sleep(chain.POLL)
    raise AssertionError(f"{what}: not within {timeout:.0f}s")


@pytest.fixture(scope="module")
def ha() -> Iterator[stack.HAStack]:
    require("prometheus", "prometheus-alertmanager", "redis-server")
    with stack.ha_stack() as running, loadgen.background(running.demo.app_url, rps=20,
                                                         duration=900):
        yield running


@pytest.fixture(scope="module")
def watch(ha: stack.HAStack) -> HAChain:
    demo = ha.demo
    watching = HAChain(demo.evaluator.url, demo.alertmanager.url, demo.webhook, ha=ha)
    for replica in ha.replicas.values():
        chain.Chain(replica.url, "", demo.webhook).wait_scraped(stack.READY_QUERIES)
    for peer in ha.peers.values():
        poll(f"cluster of {peer.url}", lambda p=peer: _joined(p.url, 2), 30)
    return watching


def _joined(url: str, size: int) -> bool:
    """Settled with at least ``size`` members (a killed peer's old identity may linger as
    suspect for a few probe intervals after it restarted under a new name)."""
    cluster = _cluster(url)
    return cluster["status"] == "ready" and len(cluster.get("peers") or []) >= size


def test_replicas_send_to_every_peer_of_a_formed_cluster(ha: stack.HAStack, watch) -> None:
    """Both peers see each other; both replicas load every rule and know both peers."""
    for peer in ha.peers.values():
        cluster = _cluster(peer.url)
        assert cluster["status"] == "ready" and len(cluster["peers"]) == 2, cluster
    for replica in ha.replicas.values():
        _, body = servers.get(replica.url + "/api/v1/alertmanagers", timeout=5)
        active = {a["url"].split("/api/")[0] for a in
                  json.loads(body)["data"]["activeAlertmanagers"]}
        assert active == {p.url for p in ha.peers.values()}
        _, body = servers.get(replica.url + "/api/v1/rules", timeout=5)
        rules = [r for g in json.loads(body)["data"]["groups"] for r in g["rules"]]
        assert rules and all(r["health"] != "err" for r in rules)


def _fault_fired(watch: HAChain, key: Key, warning: Key, start: float, out: chain.Outcome,
                 timeout: float = 90) -> None:
    """Until ``key`` is paged and ``warning`` is held back by every live peer."""
    def paged() -> bool:
        firing = watch.firing()
        if key in firing:
            out.to_evaluator.setdefault(key, firing[key] - start)
        notified = watch.notified(start)
        if key in notified:
            out.to_webhook.setdefault(key, notified[key])
        return key in notified and warning in watch.suppressed()

    poll(f"{'/'.join(key)} paged with its warning inhibited", paged, timeout)


def _resolved(watch: HAChain, key: Key, since: float, out: chain.Outcome) -> None:
    def done() -> bool:
        resolved = watch.notified(since, "resolved")
        if key in resolved:
            out.to_resolved.setdefault(key, resolved[key])
        return key in resolved and not watch.evaluator_alerts()

    poll(f"{'/'.join(key)} resolved", done, 90)


def _single_page_and_resolve(watch: HAChain, start: float, key: Key, warning: Key,
                             removed: float, out: chain.Outcome) -> None:
    """Exactly one page for the incident and its resolve, no page repeated in any group, the
    warning never sent while the fault lasted.

    A repeated *resolve* is what Alertmanager's at-least-once delivery allows when two peers'
    flush timers for a group are more than ``peer-timeout`` apart (a group created at
    different times on each, e.g. on a peer that restarted, or a side-effect alert re-opening
    a group one peer had already dropped): both check the notification log before either
    has sent. It is counted and recorded, not failed; a repeated page is failed."""
    hook = watch.webhook
    pages, resolves = (chain.count(hook, start, key, status) for status in ("firing", "resolved"))
    repeated = chain.duplicates(hook, start)
    repaged = [n for n in repeated if any(status == "firing" for _, status in n[3])]
    out.notes.append(f"pages {pages}, resolves {resolves}, duplicate pages {len(repaged)}, "
                     f"duplicate resolves {len(repeated) - len(repaged)}")
    if pages != 1 or not 1 <= resolves <= len(watch.ha.peers):
        out.problems.append(f"expected one page and its resolve: {out.notes[-1]}")
    if repaged:
        out.problems.append(f"duplicate pages: {repaged}")
    if warned := [e for e in hook.since(start) if e.key() == warning and e.at < removed]:
        out.problems.append(f"inhibited warning notified during the fault: {warned}")
    if out.problems:
        out.problems.append("notifications since the fault:\n    "
                            + chain.timeline(hook, start))


def test_losing_a_prometheus_replica_keeps_the_page_and_resolves(ha, watch) -> None:
    key, warning = (API, "latency", "critical"), (API, "latency", "warning")
    watch.wait_quiet()
    out = chain.Outcome("latency, replica a killed after the page")
    start = time.time()
    chain.set_faults(ha.demo.app_url, latency_ms=800)
    try:
        _fault_fired(watch, key, warning, start, out)
        ha.replicas["a"].kill()
        killed = time.time()
        # Replica b alone: still firing, the peers still hold the alert, nothing re-sent.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert key in watch.firing(), "the alert stopped firing with replica a gone"
            assert key in {chain.key_of(a["labels"]) for a in watch.alertmanager_alerts()
                           if a["status"]["state"] == "active"}
            time.sleep(chain.POLL)
        out.notes.append(f"replica a killed {killed - start:.1f}s after the fault; "
                         "firing on replica b for the next 10 s")
    finally:
        chain.clear_faults(ha.demo.app_url)
    removed = time.time()
    _resolved(watch, key, removed, out)
    time.sleep(GROUP_INTERVAL + 1)  # a late duplicate (another group_interval) comes by now
    _single_page_and_resolve(watch, start, key, warning, removed, out)
    ha.replicas["a"].start()
    chain.Chain(ha.replicas["a"].url, "", watch.webhook).wait_scraped(stack.READY_QUERIES)
    chain.check(RUN, out)


def _first_notifier(ha: stack.HAStack) -> str:
    """The peer at position 0 (peers sorted by name): it notifies at once, the other waits
    ``peer-timeout`` and sends only what the first has not logged as sent."""
    names = {n: _cluster(d.url)["name"] for n, d in ha.peers.items()}
    return min(names, key=names.__getitem__)


def test_losing_an_alertmanager_peer_loses_nothing_and_rejoins_quietly(ha, watch) -> None:
    key, warning = (API, "errors", "critical"), (API, "errors", "warning")
    watch.wait_quiet()
    out = chain.Outcome("50% 5xx, first-notifying peer killed before the page")
    victim = _first_notifier(ha)
    peer = ha.peers[victim]
    start = time.time()
    chain.set_faults(ha.demo.app_url, error_rate=0.5)
    try:
        # Kill it once it holds the alert, inside group_wait: the page must come from the other.
        poll("critical reaches the first peer", lambda: key in {
            chain.key_of(a["labels"]) for a in _am_alerts(peer.url)}, 90)
        peer.kill()
        killed = time.time()
        _fault_fired(watch, key, warning, start, out)
        paged = start + out.to_webhook[key] - killed
        out.notes.append(f"peer {victim} (position 0) killed {killed - start:.1f}s after the "
                         + (f"fault; page from the survivor {paged:.1f}s after the kill"
                            if paged > 0 else "fault, after it had sent the page"))
        # Restart it mid-incident: it must learn from the survivor that the page went out.
        restarted = time.time()
        peer.start()
        poll("restarted peer rejoins", lambda: _joined(peer.url, 2), 30)
        poll("restarted peer receives the firing alert again", lambda: key in {  # resend 2 s
            chain.key_of(a["labels"]) for a in _am_alerts(peer.url)}, 30)
        rejoined = time.time() - restarted
        # Inhibition holds on the rejoined peer too: it had every firing alert, the critical
        # included, before its gossip settled and it could notify anything.
        poll("warning inhibited on every peer after the restart",
             lambda: warning in watch.suppressed(), 10)
        # Its groups flushed at once (their alerts are older than group_wait) once its gossip
        # settled; a page it failed to deduplicate would come within its position's wait.
        time.sleep(2 * PEER_TIMEOUT + 4)
        out.notes.append(f"peer {victim} rejoined {rejoined:.1f}s after restart; sent in the "
                         f"{time.time() - restarted:.0f}s after restart: "
                         f"{chain.count(watch.webhook, restarted, key, 'firing')} pages, "
                         f"{chain.count(watch.webhook, restarted, warning, 'firing')} tickets")
    finally:
        chain.clear_faults(ha.demo.app_url)
    removed = time.time()
    _resolved(watch, key, removed, out)
    time.sleep(GROUP_INTERVAL + 1)
    _single_page_and_resolve(watch, start, key, warning, removed, out)
    chain.check(RUN, out)


def test_demo_banner_lists_every_replica_and_peer(ha: stack.HAStack) -> None:
    """`make demo DEMO_ARGS=--ha` prints these: each replica's and peer's URL and PID."""
    import run

    text = run.banner(ha.demo, ha.urls()) + run.ha_hint(ha)
    for daemon in (*ha.replicas.values(), *ha.peers.values()):
        assert daemon.url in text and f"kill -STOP {daemon.proc.pid}" in text
