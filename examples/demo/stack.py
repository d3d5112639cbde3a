"""The whole demo chain on 127.0.0.1: one object that ``make demo`` and ``tests/e2e`` share.

Redis and PostgreSQL (distribution packages, throwaway data directories) → the demo service
(examples/demo/app.py under uvicorn) and the ``watchkeeper-exporter`` sidecar → Prometheus
evaluating the rules ``watchkeeper generate`` writes from examples/demo/spec.jsonnet →
Alertmanager with the generated routing → the webhook receiver (examples/demo/webhook.py).

The server helpers live in tests/servers.py (the test suite's real-server fixtures); this module
puts that folder on ``sys.path``.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

DEMO = Path(__file__).resolve().parent
REPO = DEMO.parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(DEMO))

import servers  # noqa: E402  (tests/servers.py, on the path just above)
from webhook import WebhookReceiver  # noqa: E402

SPEC = DEMO / "spec.jsonnet"
SCRAPE_INTERVAL = "1s"
# Every target up, a rate window of traffic recorded and the deepest chain of recordings (the
# cache hit ratio reads lookups, which read hits and misses) queryable: from then on alerts
# mean something. On VictoriaMetrics each new recorded series becomes searchable up to ~10 s
# after its first sample, so the ratio appears ~30 s after the first scrape (docs/e2e.md).
READY_QUERIES = ['up{job="demo-api"} == 1', 'up{job="demo-sidecar"} == 1',
                 'redis_up == 1', "service:http_request_duration_seconds_count:rate15s > 5",
                 'service_cache:cache_hit_ratio:rate15s{cache="items_l1"}',
                 'service_cache:cache_hit_ratio:rate15s{cache="items_l2"}']


@dataclass
class Ports:
    """Fixed ports for ``make demo``; 0 picks a free one (tests)."""

    app: int = 0
    prometheus: int = 0
    alertmanager: int = 0
    webhook: int = 0
    sidecar: int = 0

    def resolved(self) -> Ports:
        return Ports(*(port or servers.free_port() for port in
                       (self.app, self.prometheus, self.alertmanager, self.webhook,
                        self.sidecar)))


def generate(out: Path, webhook_url: str) -> Path:
    """Runs ``watchkeeper generate`` on the demo spec; returns the alerts folder."""
    cli = Path(sys.executable).with_name("watchkeeper")
    subprocess.run([str(cli), "generate", str(SPEC), "--out", str(out), "--only", "alerts",
                    "--ext-str", f"webhook={webhook_url}"],
                   check=True, stdout=subprocess.DEVNULL)
    return out / "alerts"


def alertmanager_config(alerts: Path) -> Path:
    """The Alertmanager configuration ``watchkeeper generate`` wrote from the spec's
    ``defaults.alertmanager`` (receivers on the local webhook, short group timings)."""
    generated = alerts / "alertmanager.yml"
    if not generated.exists():
        raise RuntimeError(f"watchkeeper generate wrote no {generated}")
    return generated


def scrape_config(ports: Ports) -> list[dict]:
    return [{"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
            for job, port in (("demo-api", ports.app), ("demo-sidecar", ports.sidecar))]


def prometheus_config(workdir: Path, alerts: Path, ports: Ports) -> Path:
    config = {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL,
                   "scrape_timeout": SCRAPE_INTERVAL},
        "rule_files": [str(alerts / "*.rules.yml")],
        "alerting": {"alertmanagers": [
            {"static_configs": [{"targets": [f"127.0.0.1:{ports.alertmanager}"]}]}]},
        "scrape_configs": scrape_config(ports),
    }
    path = workdir / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@dataclass
class DemoStack:
    """Handles on every running part; ``app`` and ``redis`` can be killed and restarted."""

    workdir: Path
    ports: Ports
    alerts: Path
    webhook: WebhookReceiver
    redis: servers.RedisServer
    postgres: servers.Postgres
    app: servers.Daemon
    sidecar: servers.Daemon
    alertmanager: servers.Daemon
    evaluator: servers.Daemon  # Prometheus (or vmalert in the variant)
    alertmanager_yml: Path | None = None
    extra: dict[str, servers.Daemon] = field(default_factory=dict)

    @property
    def app_url(self) -> str:
        return self.app.url

    @property
    def query_url(self) -> str:
        """Where PromQL queries go: Prometheus, or VictoriaMetrics behind vmalert."""
        return self.extra["victoria-metrics"].url if "victoria-metrics" in self.extra \
            else self.evaluator.url

    def urls(self) -> dict[str, str]:
        return {"demo service": self.app.url, "fault switches": self.app.url + "/admin/faults",
                "rule evaluator": self.evaluator.url, "queries": self.query_url,
                "Alertmanager": self.alertmanager.url,
                "sidecar metrics": self.sidecar.url + "/metrics",
                "webhook receiver": self.webhook.url + "/{page,ticket}"}


def warm(app_url: str) -> None:
    """Fill the demo's caches so the first minute does not page for a cold cache."""
    status, body = servers.post(app_url + "/admin/warm", b"")
    if status != 200:
        raise RuntimeError(f"warming the caches failed: {status} {body}")


@contextlib.contextmanager
def backends(ports: Ports, echo: bool = False) -> Iterator[tuple]:
    """Webhook receiver, Redis, PostgreSQL, the demo service and the sidecar."""
    webhook = WebhookReceiver(ports.webhook, echo=echo).start()
    try:
        with servers.redis_server() as redis, servers.postgres_server() as pg:
            app = servers.uvicorn_daemon("app", DEMO, {"DATABASE_URL": pg.sqlalchemy_url(),
                                                       "REDIS_URL": redis.url}, ports.app)
            # The DSN (with its password) reaches the sidecar through its environment, not
            # its command line, where `ps` would show it to every user of the machine.
            sidecar = servers.sidecar_daemon("--redis", f"cache={redis.url}", "--postgres",
                                             "main=env:DEMO_POSTGRES_DSN", "--timeout", "800ms",
                                             port=ports.sidecar)
            sidecar.env = {"DEMO_POSTGRES_DSN": pg.dsn()}
            with _running(app, sidecar):
                warm(app.url)
                yield webhook, redis, pg, app, sidecar
    finally:
        webhook.stop()


@contextlib.contextmanager
def _running(*daemons: servers.Daemon) -> Iterator[None]:
    """Starts the daemons in order and stops them in reverse, whatever happens."""
    started: list[servers.Daemon] = []
    try:
        for daemon in daemons:
            started.append(daemon.start())
        yield
    finally:
        for daemon in reversed(started):
            daemon.stop()


@contextlib.contextmanager
def demo_stack(ports: Ports | None = None, echo: bool = False,
               workdir: Path | None = None) -> Iterator[DemoStack]:
    """Everything, with Prometheus evaluating the generated rules."""
    ports = (ports or Ports()).resolved()
    own_dir = workdir is None
    workdir = workdir or Path(tempfile.mkdtemp(prefix="wk-demo-"))
    try:
        webhook_url = f"http://127.0.0.1:{ports.webhook}"
        alerts = generate(workdir, webhook_url)
        am_yml = alertmanager_config(alerts)
        am = servers.alertmanager_daemon(am_yml, ports.alertmanager)
        with backends(ports, echo) as (webhook, redis, pg, app, sidecar):
            prom = servers.prometheus_daemon(prometheus_config(workdir, alerts, ports),
                                             ports.prometheus)
            with _running(am, prom):
                yield DemoStack(workdir, ports, alerts, webhook, redis, pg, app, sidecar, am,
                                prom, am_yml)
    finally:
        if own_dir:
            shutil.rmtree(workdir, ignore_errors=True)


# --- the same rules on VictoriaMetrics: vmagent scrapes, VictoriaMetrics stores, vmalert ---------

def _victoria_metrics(workdir: Path) -> servers.Daemon:
    port = servers.free_port()
    # Queries see samples at once (the default hides the last 30 s as possibly incomplete).
    return servers.Daemon(["victoria-metrics", f"-storageDataPath={workdir / 'vm-data'}",
                           f"-httpListenAddr=127.0.0.1:{port}", "-retentionPeriod=1d",
                           "-search.latencyOffset=0s", "-search.disableCache",
                           "-loggerLevel=WARN"], port, "/health")


def _vmagent(workdir: Path, ports: Ports, vm: servers.Daemon) -> servers.Daemon:
    port = servers.free_port()
    config = workdir / "vmagent.yml"
    config.write_text(yaml.safe_dump({
        "global": {"scrape_interval": SCRAPE_INTERVAL, "scrape_timeout": SCRAPE_INTERVAL},
        "scrape_configs": scrape_config(ports)}, sort_keys=False))
    return servers.Daemon(["vmagent", f"-promscrape.config={config}",
                           f"-remoteWrite.url={vm.url}/api/v1/write",
                           f"-remoteWrite.tmpDataPath={workdir / 'vmagent-data'}",
                           "-remoteWrite.flushInterval=500ms",
                           f"-httpListenAddr=127.0.0.1:{port}", "-loggerLevel=WARN"],
                          port, "/health")


def _vmalert(alerts: Path, ports: Ports, vm: servers.Daemon,
             flags: list[str]) -> servers.Daemon:
    """vmalert on the unchanged rule files; recording rules are written back to VM. It takes
    the Prometheus port: it is the rule evaluator (and its /api/v1/alerts) of this stack."""
    port = ports.prometheus
    return servers.Daemon(["vmalert", f"-rule={alerts}/*.rules.yml",
                           f"-datasource.url={vm.url}", f"-remoteWrite.url={vm.url}",
                           "-remoteWrite.flushInterval=500ms",
                           f"-notifier.url=http://127.0.0.1:{ports.alertmanager}",
                           "-evaluationInterval=1s", "-datasource.queryStep=5s",
                           f"-httpListenAddr=127.0.0.1:{port}", "-loggerLevel=WARN", *flags],
                          port, "/health")


@contextlib.contextmanager
def vm_stack(ports: Ports | None = None, echo: bool = False,
             vmalert_flags: list[str] | None = None) -> Iterator[DemoStack]:
    """Everything, with vmagent → VictoriaMetrics → vmalert in place of Prometheus."""
    ports = (ports or Ports()).resolved()
    workdir = Path(tempfile.mkdtemp(prefix="wk-demo-vm-"))
    try:
        webhook_url = f"http://127.0.0.1:{ports.webhook}"
        alerts = generate(workdir, webhook_url)
        am_yml = alertmanager_config(alerts)
        am = servers.alertmanager_daemon(am_yml, ports.alertmanager)
        vm = _victoria_metrics(workdir)
        with backends(ports, echo) as (webhook, redis, pg, app, sidecar):
            agent = _vmagent(workdir, ports, vm)
            rules = _vmalert(alerts, ports, vm, vmalert_flags or [])
            with _running(am, vm, agent, rules):
                yield DemoStack(workdir, ports, alerts, webhook, redis, pg, app, sidecar, am,
                                rules, am_yml, {"victoria-metrics": vm, "vmagent": agent})
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# --- high availability: two Prometheus replicas, two clustered Alertmanagers ---------------------

HA_EXAMPLE = REPO / "examples" / "ha" / "prometheus-replica.yml"
REPLICAS = ("a", "b")
# Gossip tuned for a test on loopback: notifications leave a peer `peer-timeout` × its position
# in the cluster later than the first peer's (the dedup window), gossip settles in ~1-2 s.
CLUSTER_TIMINGS = ["--cluster.peer-timeout=2s", "--cluster.gossip-interval=100ms",
                   "--cluster.pushpull-interval=5s", "--cluster.probe-interval=500ms",
                   "--cluster.probe-timeout=300ms", "--cluster.reconnect-interval=1s",
                   "--cluster.settle-timeout=10s"]
# Shorter than a restarted peer's gossip settling (4 polls of 10 × gossip-interval: 4 s here,
# 8 s with the defaults), during which it notifies nothing: it then has every firing alert,
# each critical that inhibits a warning included, before its first notification. With
# Prometheus' default 1 m it received a warning before its critical (their resends keep the
# phase of when each first fired), flushed the warning's group at once (its alert older than
# group_wait) and sent the ticket: 3 failures in 5 runs (docs/benchmarks-e2e.md).
RESEND_DELAY = "2s"


@dataclass
class HAPorts:
    """Ports of the second replica and peer (``make demo --ha``); 0 picks a free one."""

    prometheus_b: int = 0
    alertmanager_b: int = 0

    def resolved(self) -> HAPorts:
        return HAPorts(self.prometheus_b or servers.free_port(),
                       self.alertmanager_b or servers.free_port())


def ha_prometheus_config(workdir: Path, alerts: Path, ports: Ports, replica: str,
                         alertmanagers: list[int]) -> Path:
    """examples/ha/prometheus-replica.yml for one replica: only the replica name, rule files,
    addresses and the demo's 1 s intervals are filled in."""
    config = yaml.safe_load(HA_EXAMPLE.read_text())
    config["global"].update(scrape_interval=SCRAPE_INTERVAL, evaluation_interval=SCRAPE_INTERVAL,
                            scrape_timeout=SCRAPE_INTERVAL)
    config["global"]["external_labels"]["replica"] = replica
    config["rule_files"] = [str(alerts / "*.rules.yml")]
    config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] = [
        f"127.0.0.1:{port}" for port in alertmanagers]
    config["scrape_configs"] = scrape_config(ports)
    folder = workdir / f"prometheus-{replica}"
    folder.mkdir(exist_ok=True)
    path = folder / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def ha_prometheus_daemon(config: Path, port: int) -> servers.Daemon:
    daemon = servers.prometheus_daemon(config, port)
    daemon.argv.append(f"--rules.alert.resend-delay={RESEND_DELAY}")
    return daemon


def clustered_alertmanager(config: Path, port: int, name: str, cluster_port: int,
                           peers: list[int]) -> servers.Daemon:
    """One peer of an Alertmanager cluster gossiping on 127.0.0.1 (its own data folder, so a
    restarted peer comes back with what it had written to disk, like a restarted pod)."""
    data = config.parent / f"alertmanager-{name}-data"
    return servers.Daemon(
        ["prometheus-alertmanager", f"--config.file={config}", f"--storage.path={data}",
         f"--web.listen-address=127.0.0.1:{port}",
         f"--cluster.listen-address=127.0.0.1:{cluster_port}",
         f"--cluster.advertise-address=127.0.0.1:{cluster_port}",
         *[f"--cluster.peer=127.0.0.1:{peer}" for peer in peers], *CLUSTER_TIMINGS,
         "--log.level=warn"], port)


@dataclass
class HAStack:
    """The demo stack with ``replicas`` (Prometheus a, b) and ``peers`` (Alertmanager a, b);
    ``demo`` holds replica a and peer a as its evaluator and Alertmanager."""

    demo: DemoStack
    replicas: dict[str, servers.Daemon]
    peers: dict[str, servers.Daemon]

    def urls(self) -> dict[str, str]:
        urls = self.demo.urls()
        del urls["rule evaluator"], urls["queries"], urls["Alertmanager"]
        urls |= {f"Prometheus {name}": d.url for name, d in self.replicas.items()}
        urls |= {f"Alertmanager {name}": d.url for name, d in self.peers.items()}
        return urls


@contextlib.contextmanager
def ha_stack(ports: Ports | None = None, ha_ports: HAPorts | None = None,
             echo: bool = False) -> Iterator[HAStack]:
    """Everything, with two Prometheus replicas and two clustered Alertmanagers."""
    ports = (ports or Ports()).resolved()
    ha_ports = (ha_ports or HAPorts()).resolved()
    workdir = Path(tempfile.mkdtemp(prefix="wk-demo-ha-"))
    try:
        alerts = generate(workdir, f"http://127.0.0.1:{ports.webhook}")
        am_yml = alertmanager_config(alerts)
        am_ports = {"a": ports.alertmanager, "b": ha_ports.alertmanager_b}
        gossip = {name: servers.free_port() for name in REPLICAS}
        peers = {name: clustered_alertmanager(am_yml, am_ports[name], name, gossip[name],
                                              [p for n, p in gossip.items() if n != name])
                 for name in REPLICAS}
        prom_ports = {"a": ports.prometheus, "b": ha_ports.prometheus_b}
        with backends(ports, echo) as (webhook, redis, pg, app, sidecar):
            replicas = {name: ha_prometheus_daemon(
                ha_prometheus_config(workdir, alerts, ports, name, list(am_ports.values())),
                prom_ports[name]) for name in REPLICAS}
            with _running(*peers.values(), *replicas.values()):
                demo = DemoStack(workdir, ports, alerts, webhook, redis, pg, app, sidecar,
                                 peers["a"], replicas["a"], am_yml)
                yield HAStack(demo, replicas, peers)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
