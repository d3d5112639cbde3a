"""Naming presets (`metrics: otel`, `metrics: prometheus-fastapi-instrumentator`): the generated
rules read exactly what that instrumentation emits, proven against real apps scraped by a real
Prometheus; histograms in milliseconds and budgets the instrumentation cannot feed are refused
with an explanation."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import servers
import yaml
from rule_helpers import generate_alerts, run_promtool, write_spec

sys.path.insert(0, str(Path(__file__).parent))  # the contract test's selector parsing
from test_generator_exporters_contract import query, raw_selectors

APPS = Path(__file__).parent / "apps"
HTTP = {"latency": {"p99": {"critical": "1s"}}, "error_ratio": {"critical": "5%"}}


def spec(service: dict) -> dict:
    return {"version": 1, "services": [{"name": "svc", "selector": {"job": "svc"},
                                        "language": "python", **service}]}


def rules_text(alerts: Path) -> str:
    """All rule files of the service (one per rule group)."""
    files = sorted(alerts.glob("svc.*.rules.yml"))
    assert files, sorted(alerts.iterdir())
    return "\n".join(path.read_text() for path in files)


def watchkeeper(tmp_path: Path, document: dict) -> subprocess.CompletedProcess:
    path = write_spec(tmp_path, document)
    exe = Path(sys.executable).with_name("watchkeeper")
    return subprocess.run([str(exe), "generate", str(path)], capture_output=True, text=True,
                          cwd=tmp_path)


def test_otel_preset_reads_semantic_convention_names(tmp_path) -> None:
    document = spec({
        "metrics": "otel", "http": HTTP,
        "database": {"latency": {"p99": {"critical": "500ms"}},
                     "pool": {"utilization": {"critical": "90%"}}},
        "runtime": {"memory": {"critical": "1GiB"}, "threads": {"critical": 500}},
    })
    alerts = generate_alerts(write_spec(tmp_path, document), tmp_path)
    text = rules_text(alerts)
    for name in ("http_server_request_duration_seconds_bucket",
                 'http_response_status_code=~"5.."', "db_client_operation_duration_seconds",
                 'db_client_connection_state="used"', "db_client_connection_pool_name",
                 "process_memory_usage_bytes", "process_thread_count"):
        assert name in text, name
    for name in ("http_request_duration_seconds", ',state="used"', "python_threads",
                 "process_resident_memory_bytes"):
        assert name not in text, name
    checked, tested = run_promtool(alerts)  # the rules and their generated tests still hold
    assert checked.ok and tested.ok, (checked, tested)


def test_every_label_is_overridable_on_top_of_a_preset(tmp_path) -> None:
    document = spec({
        "metrics": {"preset": "otel", "pool_state_label": "st", "pool_state_value": "busy",
                    "pool_label": "pool"},
        "http": {**HTTP, "status_label": "status"},
        "database": {"pool": {"utilization": {"critical": "90%"}}},
    })
    text = rules_text(generate_alerts(write_spec(tmp_path, document), tmp_path))
    assert 'status=~"5.."' in text and 'st="busy"' in text and "ignoring(st)" in text
    assert "http_server_request_duration_seconds" in text  # the preset's name stays


@pytest.mark.parametrize(("service", "message"), [
    ({"http": {**HTTP, "histogram": "http_server_duration_milliseconds"}},
     "'http_server_duration_milliseconds' is in milliseconds"),
    ({"metrics": {"job_duration": "job_duration_ms"}, "jobs": [{"name": "j", "failure_ratio": {
        "critical": "5%"}}]}, "is in ms"),
    ({"metrics": "otel", "runtime": {"gc_pause": {"critical": "100ms"}}},
     "runtime.gc_pause: OpenTelemetry's semantic conventions have no metric for GC pauses"),
    ({"metrics": "prometheus-fastapi-instrumentator", "http": HTTP},
     "http.error_ratio: prometheus-fastapi-instrumentator's default"),
    ({"metrics": "opentelemetry"}, "unknown metrics preset 'opentelemetry'"),
])
def test_refused_with_an_explanation(tmp_path, service: dict, message: str) -> None:
    done = watchkeeper(tmp_path, spec(service))
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "alerts").exists()


def test_a_named_metric_or_status_label_lifts_the_refusal(tmp_path) -> None:
    ok = spec({"metrics": {"preset": "otel", "gc_pause": "python_gc_pause_seconds"},
               "runtime": {"gc_pause": {"critical": "100ms"}}})
    assert watchkeeper(tmp_path, ok).returncode == 0
    ok = spec({"metrics": "prometheus-fastapi-instrumentator",
               "http": {**HTTP, "status_label": "status"}})
    done = watchkeeper(tmp_path, ok)
    assert done.returncode == 0, done.stderr


@contextlib.contextmanager
def scraped_app(tmp_path: Path, module: str, env: dict[str, str]):
    """The app under uvicorn, scraped every second by a real Prometheus as job `svc`."""
    app = servers.uvicorn_daemon(module, APPS, env).start()
    try:
        config = tmp_path / "prometheus.yml"
        config.write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s"},
            "scrape_configs": [{"job_name": "svc", "static_configs": [
                {"targets": [f"{servers.HOST}:{app.port}"]}]}]}))
        prometheus = servers.prometheus_daemon(config).start()
        try:
            deadline = time.monotonic() + 30
            while not query(prometheus.url, 'up{job="svc"} == 1'):
                assert time.monotonic() < deadline, prometheus.log()[-2000:]
                time.sleep(0.5)
            for _ in range(2):  # traffic between scrapes, so rates are not zero
                for path in ("/items/1", "/items/2", "/boom", "/health"):
                    with contextlib.suppress(OSError):
                        urllib.request.urlopen(app.url + path, timeout=5).close()
                time.sleep(1.5)
            time.sleep(1.5)
            yield prometheus.url
        finally:
            prometheus.stop()
    finally:
        app.stop()


@pytest.mark.parametrize(("module", "metrics", "http", "env"), [
    ("otel_app", "otel", HTTP, {"OTEL_SEMCONV_STABILITY_OPT_IN": "http"}),
    ("instrumentator_app", "prometheus-fastapi-instrumentator",
     {**HTTP, "status_label": "status"}, {}),
])
def test_real_app_has_a_series_for_every_selector(tmp_path, module, metrics, http, env) -> None:
    document = spec({"metrics": metrics, "http": http})
    alerts = generate_alerts(write_spec(tmp_path, document), tmp_path)
    selectors = set().union(*map(raw_selectors, alerts.glob("svc.*.rules.yml")))
    assert len(selectors) >= 3, selectors
    with scraped_app(tmp_path, module, env) as prometheus:
        missing = sorted(s for s in selectors if not query(prometheus, s))
        errors = query(prometheus, f"sum(rate({_count(document)}[1m]))")
    assert not missing, f"selected by the rules but never scraped: {missing}"
    assert errors and float(errors[0]["value"][1]) > 0


def _count(document: dict) -> str:
    service = document["services"][0]
    name = "http_server_request_duration_seconds" if service["metrics"] == "otel" else \
        "http_request_duration_seconds"
    status = service["http"].get("status_label", "http_response_status_code")
    return f'{name}_count{{job="svc",{status}=~"5.."}}'


@pytest.mark.parametrize(("service", "message"), [
    ({"serving": "multiprocess", "metrics": "otel", "http": HTTP},
     "serving: multiprocess: OpenTelemetry's Prometheus exporter serves the metrics of one "
     "process"),
    ({"serving": "multiprocess", "metrics": {"preset": "prometheus-fastapi-instrumentator"},
      "runtime": {"memory": {"critical": "1GiB"}}},
     "runtime.memory: under serving: multiprocess, prometheus-client serves no process memory"),
])
def test_multiprocess_serving_refuses_what_the_merged_view_lacks(tmp_path, service,
                                                                 message) -> None:
    done = watchkeeper(tmp_path, spec(service))
    assert done.returncode == 2 and message in done.stderr, done.stderr


def test_multiprocess_serving_accepts_what_the_workers_write(tmp_path) -> None:
    lifted = spec({"serving": "multiprocess",
                   "metrics": {"preset": "prometheus-fastapi-instrumentator",
                               "resident_memory": "process_resident_memory_bytes"},
                   "runtime": {"memory": {"critical": "1GiB"}}})
    assert watchkeeper(tmp_path, lifted).returncode == 0
    ours = spec({"serving": "multiprocess", "http": HTTP,
                 "runtime": {"memory": {"critical": "1GiB"}, "threads": {"critical": 100},
                             "gc_pause": {"critical": "1s"}, "cpu": {"critical": "90%"}},
                 "database": {"pool": {"utilization": {"critical": "90%"}}}})
    done = watchkeeper(tmp_path, ours)
    assert done.returncode == 0, done.stderr
