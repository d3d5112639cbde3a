"""The contract between the two halves: every series the generated rules for a python
service select exists when a real instrumented app and the sidecar are scraped by a real
Prometheus. If an exporter renames a metric or a label, or a signal reads a new one, this
fails — the rules could otherwise go silently quiet.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import servers
import yaml
from rule_helpers import generate_alerts, write_spec

JOB = "tickets-api"
SPEC = {
    "version": 1,
    "defaults": {"alertmanager": {"receivers": "none"}},
    "services": [{
        "name": JOB, "selector": {"job": JOB}, "language": "python",
        "http": {"latency": {"p99": {"critical": "1s"}}, "error_ratio": {"critical": "5%"}},
        "database": {"latency": {"p99": {"critical": "1s"}},
                     "pool": {"utilization": {"critical": "95%"}}},
        "caches": [{"name": "items_l1", "hit_ratio": {"critical": "10%"}},
                   {"name": "items_l2", "hit_ratio": {"critical": "10%"}}],
        "runtime": {"memory": {"critical": "4GiB"},
                    "threads": {"critical": 1000, "leak": {"window": "10m", "horizon": "1h"}},
                    "tasks": {"critical": 1000, "leak": {"window": "10m", "horizon": "1h"}},
                    "gc_pause": {"critical": "1s"}, "cpu": {"critical": "95%"}},
        "jobs": [{"name": "reindex", "failure_ratio": {"critical": "50%"},
                  "duration": {"p99": {"critical": "1m"}}, "backlog": {"critical": 1000}}],
    }],
}
KEYWORDS = {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left",
            "group_right", "offset", "bool"}
SELECTOR = re.compile(r"(?<![\w.:])([a-zA-Z_:][a-zA-Z0-9_:]*)\b\s*(\{[^}]*\})?(?!\s*\()")
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")


def raw_selectors(rules_file: Path) -> set[str]:
    """Every selector of a raw (scraped) metric in the rule expressions; recordings, whose
    names hold a colon, are produced by the rules themselves and skipped."""
    found = set()
    for group in yaml.safe_load(rules_file.read_text())["groups"]:
        for rule in group["rules"]:
            expr = GROUPING.sub("", re.sub(r"\[[^\]]*\]", "", rule["expr"]))  # no windows, labels
            for name, matchers in SELECTOR.findall(expr):
                if ":" in name or name in KEYWORDS:
                    continue
                found.add(name + (matchers or ""))
    return found


def query(prometheus: str, promql: str) -> list:
    url = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)["data"]["result"]


@pytest.fixture(scope="module")
def scraped(tmp_path_factory):
    """Prometheus scraping the instrumented app and the sidecar under one job."""
    folder = tmp_path_factory.mktemp("contract")
    with servers.instrumented_stack() as stack:
        targets = [urllib.parse.urlsplit(u).netloc
                   for u in (stack.app_metrics_url, stack.sidecar_metrics_url)]
        config = folder / "prometheus.yml"
        config.write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s"},
            "scrape_configs": [{"job_name": JOB, "static_configs": [{"targets": targets}]}],
        }))
        port = servers.free_port()
        proc = subprocess.Popen(
            ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={folder / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            servers.wait_for_port(port, proc=proc)
            url = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:  # ready, and both targets scraped
                with contextlib.suppress(OSError):
                    if len(query(url, f'up{{job="{JOB}"}} == 1')) == 2:
                        break
                time.sleep(0.5)
            servers.exercise_app(stack.app.base_url)  # fresh traffic after the first scrape
            time.sleep(2.5)
            yield url, folder
        finally:
            proc.terminate()
            proc.wait(10)


def test_every_selector_of_the_generated_rules_has_series(scraped):
    prometheus, folder = scraped
    alerts = generate_alerts(write_spec(folder, SPEC), folder)
    selectors = set().union(*map(raw_selectors, alerts.glob(f"{JOB}.*.rules.yml")))
    assert len(selectors) >= 12, selectors  # the parse found the rules' inputs
    missing = sorted(s for s in selectors if not query(prometheus, s))
    assert not missing, f"selected by the rules but never scraped: {missing}"


def test_every_cache_of_the_spec_reports_lookups(scraped):
    """Cache alerts select recordings by `cache` value; the exporters must use those values."""
    prometheus, _ = scraped
    for cache in SPEC["services"][0]["caches"]:
        selector = f'{{job="{JOB}",cache="{cache["name"]}"}}'
        assert query(prometheus, f"cache_hits_total{selector} or cache_misses_total{selector}"), \
            cache["name"]


RECIPE_BUDGETS = {
    "http": {"latency": {"p99": {"critical": "1s"}}, "error_ratio": {"critical": "5%"}},
    "database": {"latency": {"p99": {"critical": "1s"}},
                 "pool": {"utilization": {"critical": "95%"}}},
    "runtime": {"memory": {"critical": "4GiB"}, "cpu": {"critical": "90%"},
                "threads": {"critical": 1000, "leak": {"window": "10m", "horizon": "1h"}},
                "gc_pause": {"critical": "1s"}},
}
RECIPES = {
    # the Flask recipe under gunicorn: 2 workers, prometheus-client's multiprocess mode
    "flask-app": ({"serving": "multiprocess"},
                  ["-m", "gunicorn", "-c", "gunicorn.conf.py", "-b", "{address}",
                   "flask_app:app"]),
    # the FastAPI recipe under uvicorn: async engine, redis.asyncio L2, an async job
    "fastapi-app": ({"caches": [{"name": "items_l1", "hit_ratio": {"critical": "10%"}},
                                {"name": "items_l2", "hit_ratio": {"critical": "10%"}}],
                     "runtime": {**RECIPE_BUDGETS["runtime"],
                                 "tasks": {"critical": 1000}},
                     "jobs": [{"name": "reindex", "failure_ratio": {"critical": "50%"}}]},
                    ["-m", "uvicorn", "fastapi_app:app", "--host", "{host}", "--port", "{port}",
                     "--log-level", "warning"]),
}


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_recipe_app_has_a_series_for_every_selector(tmp_path, name):
    """The recipes of docs/exporters.md, run as written and scraped by a real Prometheus: the
    generated rules select nothing that is not there, under gunicorn (`serving:
    multiprocess`: threads, memory, CPU, pool sizes from the workers' sync threads) as under
    uvicorn, through a database outage."""
    import os
    import sys

    from test_exporters_recipes import fetch, seed, stop_postgres, write_recipes

    write_recipes(tmp_path)
    (folder := tmp_path / "multiproc").mkdir()
    extra, argv = RECIPES[name]
    service = {"name": name, "selector": {"job": name}, "language": "python",
               **RECIPE_BUDGETS, **extra}
    alerts = generate_alerts(write_spec(tmp_path, {"version": 1, "services": [service]}),
                             tmp_path / "out")
    selectors = set().union(*map(raw_selectors, alerts.glob(f"{name}.*.rules.yml")))
    assert len(selectors) >= 8, selectors
    with servers.postgres_server() as pg, servers.redis_server() as redis:
        seed(pg)
        port = servers.free_port()
        env = {**os.environ, "DATABASE_URL": pg.sqlalchemy_url(), "REDIS_URL": redis.url}
        if extra.get("serving") == "multiprocess":
            env["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
        words = {"address": f"{servers.HOST}:{port}", "host": servers.HOST, "port": str(port)}
        app = subprocess.Popen([sys.executable, *(a.format(**words) for a in argv)],
                               cwd=tmp_path, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
        config = tmp_path / "prometheus.yml"
        config.write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s"},
            "scrape_configs": [{"job_name": name, "static_configs": [
                {"targets": [f"{servers.HOST}:{port}"]}]}]}))
        base = f"http://{servers.HOST}:{port}"
        try:
            servers.wait_for_port(port, proc=app, timeout=30)
            prometheus = servers.prometheus_daemon(config).start()
            try:
                deadline = time.monotonic() + 30
                while not query(prometheus.url, f'up{{job="{name}"}} == 1'):
                    assert time.monotonic() < deadline
                    time.sleep(0.5)
                for i in range(30):
                    fetch(f"{base}/items/{1 + i % 3}")
                if name == "fastapi-app":
                    assert fetch(f"{base}/reindex", "POST") == 200
                stop_postgres(pg)  # a database outage: the app answers 500
                assert fetch(f"{base}/items/7", timeout=15) == 500
                time.sleep(3)
                missing = sorted(s for s in selectors if not query(prometheus.url, s))
            finally:
                prometheus.stop()
        finally:
            servers._stop(app, timeout=10)
    assert not missing, f"selected by the rules but never scraped: {missing}"
