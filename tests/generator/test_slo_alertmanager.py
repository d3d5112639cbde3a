"""The generated Alertmanager config, run by a real Alertmanager: an SLO's fast-burn page
holds back its own slow-burn ticket, and only its own."""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
import urllib.request

from rule_helpers import generate_alerts, write_spec
from servers import HOST, _stop, free_port, wait_for_port


def _alert(slo: str, severity: str, tier: str) -> dict:
    return {"labels": {"alertname": "SloErrorBudgetBurn", "service": "shop", "slo": slo,
                       "signal": "latency", "severity": severity, "burn_tier": tier}}


def _states(base: str) -> dict[tuple[str, str], bool]:
    with urllib.request.urlopen(f"{base}/api/v2/alerts", timeout=5) as response:
        alerts = json.load(response)
    return {(a["labels"]["slo"], a["labels"]["burn_tier"]): bool(a["status"]["inhibitedBy"])
            for a in alerts}


def test_fast_burn_page_inhibits_its_own_slow_burn_ticket_only(tmp_path, amtool):
    receivers = {"page": {"webhook_url": "http://127.0.0.1:9/page"},
                 "ticket": {"webhook_url": "http://127.0.0.1:9/ticket"}}
    spec = write_spec(tmp_path, {
        "version": 1, "defaults": {"alertmanager": {"receivers": receivers}}, "services": [{
        "name": "shop", "selector": {"job": "shop"}, "language": "go", "http": {},
        "slos": [{"name": "latency-p95", "objective": "95%", "indicator": {"latency": "200ms"}},
                 {"name": "latency-p99", "objective": "99%", "indicator": {"latency": "1s"}}]}]})
    config = generate_alerts(spec, tmp_path) / "alertmanager.yml"
    port = free_port()
    with tempfile.TemporaryDirectory() as storage:
        proc = subprocess.Popen(
            [amtool.replace("amtool", "prometheus-alertmanager"), f"--config.file={config}",
             f"--storage.path={storage}", f"--web.listen-address={HOST}:{port}",
             "--cluster.listen-address="],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_for_port(port, proc=proc)
            base = f"http://{HOST}:{port}"
            body = json.dumps([_alert("latency-p95", "critical", "page-1h"),
                               _alert("latency-p95", "warning", "ticket-1d"),
                               _alert("latency-p99", "warning", "ticket-3d")]).encode()
            request = urllib.request.Request(f"{base}/api/v2/alerts", body,
                                             {"Content-Type": "application/json"})
            urllib.request.urlopen(request, timeout=5).close()
            expected = {("latency-p95", "page-1h"): False, ("latency-p95", "ticket-1d"): True,
                        ("latency-p99", "ticket-3d"): False}
            deadline = time.monotonic() + 10
            while (states := _states(base)) != expected and time.monotonic() < deadline:
                time.sleep(0.2)
            assert states == expected
        finally:
            _stop(proc)
