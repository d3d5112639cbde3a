"""A real Prometheus and a real VictoriaMetrics holding the synthetic history of history.py."""

from __future__ import annotations

import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import servers
from backtest import history

HERE = Path(__file__).resolve().parent
SPEC = HERE / "spec.yaml"


@pytest.fixture(scope="session")
def start() -> int:
    """History starts 8 hours before the last full hour (recent, inside every retention)."""
    return int(time.time()) // 3600 * 3600 - 8 * 3600


@pytest.fixture(scope="session")
def synthetic(start: int) -> history.History:
    return history.build(start)


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory, synthetic, promtool_path) -> Iterator[str]:
    """Prometheus started on a TSDB backfilled by promtool from the OpenMetrics history."""
    root = tmp_path_factory.mktemp("backtest-prometheus")
    data = root / "data"
    source = root / "history.om"
    source.write_text(synthetic.openmetrics())
    subprocess.run([promtool_path, "tsdb", "create-blocks-from", "openmetrics", str(source),
                    str(data)], check=True, capture_output=True)
    config = root / "prometheus.yml"
    config.write_text("global: {evaluation_interval: 1m}\n")
    port = servers.free_port()
    daemon = servers.Daemon(["prometheus", f"--config.file={config}",
                             f"--storage.tsdb.path={data}", "--storage.tsdb.retention.time=10y",
                             f"--web.listen-address={servers.HOST}:{port}", "--log.level=warn"],
                            port)
    daemon.start()
    try:
        yield daemon.url
    finally:
        daemon.stop()


@pytest.fixture(scope="session")
def victoria(tmp_path_factory, synthetic) -> Iterator[str]:
    """VictoriaMetrics with the same history imported through its API."""
    root = tmp_path_factory.mktemp("backtest-victoria")
    port = servers.free_port()
    daemon = servers.Daemon(["victoria-metrics", f"-storageDataPath={root / 'data'}",
                             f"-httpListenAddr={servers.HOST}:{port}", "-retentionPeriod=2d",
                             "-search.latencyOffset=0s", "-search.disableCache",
                             "-loggerLevel=WARN"], port, "/health")
    daemon.start()
    try:
        request = urllib.request.Request(daemon.url + "/api/v1/import/prometheus",
                                         data=synthetic.prometheus_text().encode(),
                                         method="POST")
        with urllib.request.urlopen(request, timeout=60):
            pass
        with urllib.request.urlopen(daemon.url + "/internal/force_flush", timeout=60):
            pass
        yield daemon.url
    finally:
        daemon.stop()
