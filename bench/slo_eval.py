"""Rule evaluation cost of one 30-day SLO on a real Prometheus holding 30 days of history.

Three rule sets for the same SLO (Sloth's getting-started example: 99.9% of
``http_request_duration_seconds_count{job="myservice"}`` not 5xx/429) are loaded into one
Prometheus side by side and evaluated on the same data:

- ours: the rules `watchkeeper import sloth` + `watchkeeper generate` write for it;
- Sloth: the rules Sloth itself generated for it (tests/slo/fixtures/sloth_gen/);
- naive: the 30-day error ratio read straight from the raw series, ``rate(x[30d])``.

History: 10 instances x 2 codes scraped every 30s for 30 days, backfilled with
``promtool tsdb create-blocks-from openmetrics``, plus 30 days of the 5m recordings each
rule set reads (as a Prometheus that ran these rules for a month would hold). A small
exporter in this process continues the same series live, so the short windows stay fresh.
Traffic follows a day/night cycle (night at 10% of peak) with a constant number of errors
per second, so errors are a larger share at night: the 30-day ratio of averages is the
true error ratio; an average of 5m ratios over-weights the night.

Reports, per rule set, the median of ``prometheus_rule_group_last_duration_seconds``
(summed over its groups) over ``--samples`` evaluations, the ratios, and each set's 30-day
error ratio against the true one. Usage (heavy: run under the shared lock):

    flock /tmp/wk-heavy.lock .venv/bin/python bench/slo_eval.py
"""

from __future__ import annotations

import argparse
import http.server
import json
import math
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import servers  # noqa: E402  (ports and daemons as the tests start them)

SLOTH_SPEC = REPO / "tests" / "slo" / "fixtures" / "sloth" / "getting-started.yml"
SLOTH_RULES = REPO / "tests" / "slo" / "fixtures" / "sloth_gen" / "getting-started.yml"
HOST = "127.0.0.1"
DAY = 86400
INSTANCES = 10
SCRAPE = 30  # seconds
PEAK = 20.0  # requests/s per instance at the top of the day
ERRORS = 0.004  # errors/s per instance, day and night
METRIC = "http_request_duration_seconds_count"
SELECT = '{job="myservice",code=~"(5..|429)"}'
NAIVE = {"groups": [{"name": "naive-30d", "rules": [{
    "record": "naive:sli_error:ratio_rate30d",
    "expr": f'sum(rate({METRIC}{SELECT}[30d]))\n/\nsum(rate({METRIC}{{job="myservice"}}[30d]))',
}]}]}


def requests(t: float) -> float:
    """Requests/s of one instance at time t: a day/night cycle from 10% to 190% of half-peak."""
    return PEAK / 2 * (1 + 0.9 * math.sin(2 * math.pi * t / DAY))


def true_ratio() -> float:
    """Errors over requests over whole days: the mean of requests() is PEAK / 2."""
    return ERRORS / (PEAK / 2)


class Counters:
    """Per-instance request counters (code 200 and 500) integrated over time."""

    def __init__(self, start: float):
        self.t = start
        self.good = [0.0] * INSTANCES
        self.bad = [0.0] * INSTANCES

    def advance(self, to: float, step: float = 1.0) -> None:
        while self.t < to:
            dt = min(step, to - self.t)
            total = requests(self.t + dt / 2) * dt
            for i in range(INSTANCES):
                self.bad[i] += ERRORS * dt
                self.good[i] += total - ERRORS * dt
            self.t += dt

    def exposition(self) -> str:
        lines = [f"# TYPE {METRIC} untyped"]
        for i in range(INSTANCES):
            for code, value in (("200", self.good[i]), ("500", self.bad[i])):
                lines.append(f'{METRIC}{{instance="i{i}",code="{code}"}} {value:.3f}')
        return "\n".join(lines) + "\n"


def write_history(path: Path, start: float, end: float) -> Counters:
    """OpenMetrics text of 30 days of raw counters and of the recordings each rule set
    reads; returns the counters at `end` for the live exporter to continue."""
    counters = Counters(start)
    with path.open("w") as out:
        out.write(f"# TYPE {METRIC} unknown\n")
        series: dict[str, list[str]] = {}
        t = start
        while t <= end:
            counters.advance(t, SCRAPE)
            for i in range(INSTANCES):
                for code, value in (("200", counters.good[i]), ("500", counters.bad[i])):
                    key = f'{METRIC}{{job="myservice",instance="i{i}",code="{code}"}}'
                    series.setdefault(key, []).append(f"{key} {value:.3f} {t:.0f}")
            t += SCRAPE
        for lines in series.values():
            out.write("\n".join(lines) + "\n")
        ours = '{service="myservice",slo="requests-availability"}'
        sloth = ('{cmd="examplesgen.sh",owner="myteam",repo="myorg/myservice",'
                 'sloth_id="myservice-requests-availability",sloth_service="myservice",'
                 'sloth_slo="requests-availability",sloth_window="5m",tier="2"}')
        for name, labels, value in (
                ("slo:bad_events:rate5m", ours, lambda _: ERRORS * INSTANCES),
                ("slo:events:rate5m", ours, lambda t: requests(t) * INSTANCES),
                ("slo:sli_error:ratio_rate5m", sloth, lambda t: ERRORS / requests(t))):
            out.write(f"# TYPE {name} unknown\n")
            t = start + 300
            while t <= end:
                out.write(f"{name}{labels} {value(t):.9g} {t:.0f}\n")
                t += 60
        out.write("# EOF\n")
    return counters


class Exporter(http.server.BaseHTTPRequestHandler):
    counters: Counters
    lock = threading.Lock()

    def do_GET(self) -> None:
        with self.lock:
            self.counters.advance(time.time())
            body = self.counters.exposition().encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def query(port: int, expr: str) -> list[dict]:
    url = f"http://{HOST}:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.load(response)["data"]["result"]


def group_durations(port: int) -> dict[str, float]:
    """`prometheus_rule_group_last_duration_seconds` by group, from Prometheus' /metrics
    (it does not scrape itself here)."""
    with urllib.request.urlopen(f"http://{HOST}:{port}/metrics", timeout=30) as response:
        text = response.read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith("prometheus_rule_group_last_duration_seconds{"):
            labels, value = line.rsplit(" ", 1)
            group = labels.split('rule_group="', 1)[1].split('"', 1)[0]
            out[group.split(";")[-1]] = float(value)
    return out


def our_rules(folder: Path) -> list[Path]:
    """Import Sloth's example and generate watchkeeper's rules for it (the CLI a user runs):
    the SLO's two rule files, its alerts' group and the report group holding the 30-day
    ratio (not the service's up/absent alerts, which Sloth does not write)."""
    spec = folder / "spec.yaml"
    cli = [sys.executable, "-m", "watchkeeper.cli"]
    subprocess.run([*cli, "import", "sloth", str(SLOTH_SPEC), "-o", str(spec)], check=True,
                   capture_output=True)
    subprocess.run([*cli, "generate", str(spec), "--out", str(folder), "--only", "alerts"],
                   check=True, capture_output=True)
    return sorted((folder / "alerts").glob("myservice.slo*.rules.yml"))


def sloth_rules(folder: Path) -> list[Path]:
    paths = []
    for i, document in enumerate(d for d in yaml.safe_load_all(SLOTH_RULES.read_text()) if d):
        paths.append(folder / f"sloth-{i}.rules.yml")
        paths[-1].write_text(yaml.safe_dump(document))
    return paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=15, help="evaluations per rule set")
    parser.add_argument("--interval", type=int, default=10, help="rule evaluation interval (s)")
    parser.add_argument("--days", type=int, default=30, help="days of history (smoke: 1)")
    args = parser.parse_args()
    for tool in ("prometheus", "promtool"):
        if shutil.which(tool) is None:
            print(f"{tool} not found; run scripts/install-test-deps.sh", file=sys.stderr)
            return 2
    with tempfile.TemporaryDirectory(prefix="wk-slo-bench-") as tmp:
        folder = Path(tmp)
        end = time.time() - 5
        start = end - args.days * DAY
        began = time.monotonic()
        counters = write_history(folder / "history.om", start, end)
        data = folder / "data"
        subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", "-q",
                        "--max-block-duration=744h", str(folder / "history.om"), str(data)],
                       check=True)
        (folder / "history.om").unlink()
        print(f"backfilled {args.days} days in {time.monotonic() - began:.0f}s", flush=True)
        Exporter.counters = counters
        # in this process: it binds port 0 itself, so no other process can take its port
        server = http.server.ThreadingHTTPServer((HOST, 0), Exporter)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        sets = {"ours": our_rules(folder), "sloth": sloth_rules(folder),
                "naive": [folder / "naive.rules.yml"]}
        sets["naive"][0].write_text(yaml.safe_dump(NAIVE))
        groups = {name: [g["name"] for p in paths
                         for g in yaml.safe_load(p.read_text())["groups"]]
                  for name, paths in sets.items()}
        config = {"global": {"scrape_interval": f"{SCRAPE}s",
                             "evaluation_interval": f"{args.interval}s"},
                  "rule_files": [str(p) for paths in sets.values() for p in paths],
                  "scrape_configs": [{"job_name": "myservice", "honor_labels": True,
                                      "static_configs": [
                      {"targets": [f"{HOST}:{server.server_address[1]}"]}]}]}
        (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
        # a port reserved as the tests reserve theirs (tests/servers.py): outside the
        # ephemeral range, locked for this process, so a test run beside it cannot take it
        port = servers.free_port()
        prometheus = servers.Daemon(
            ["prometheus", f"--config.file={folder / 'prometheus.yml'}",
             f"--storage.tsdb.path={data}", "--storage.tsdb.retention.time=90d",
             f"--web.listen-address={HOST}:{port}"], port, log_path=folder / "prometheus.log")
        try:
            prometheus.start(timeout=600)  # ready once it has loaded the backfilled blocks
            status = measure(port, groups, args)
            if status:
                print(prometheus.log()[-3000:], file=sys.stderr)
            return status
        finally:
            prometheus.stop()
            server.shutdown()


def measure(port: int, groups: dict[str, list[str]], args: argparse.Namespace) -> int:
    deadline = time.monotonic() + 600
    wanted = {g for names in groups.values() for g in names}
    seen: set[str] = set()
    while time.monotonic() < deadline:
        try:
            seen = {g for g, v in group_durations(port).items() if v > 0}
            if wanted <= seen:
                break
        except OSError:
            pass
        time.sleep(1)
    else:
        print(f"rule groups never evaluated: {sorted(wanted - seen)}", file=sys.stderr)
        return 1
    time.sleep(2 * args.interval)  # let the first evaluations (cold caches) pass
    durations: dict[str, list[float]] = {name: [] for name in groups}
    for _ in range(args.samples):
        values = group_durations(port)
        for name, names in groups.items():
            durations[name].append(sum(values[g] for g in names))
        time.sleep(args.interval)
    medians = {name: statistics.median(v) for name, v in durations.items()}
    ratios = {
        "ours": query(port, 'slo:sli_error:ratio_rate30d{service="myservice"}'),
        "sloth": query(port, 'slo:sli_error:ratio_rate30d{sloth_service="myservice"}'),
        "naive": query(port, "naive:sli_error:ratio_rate30d"),
    }
    print(f"rule evaluation, median of {args.samples} evaluations every {args.interval}s "
          f"(10 instances x 2 codes, 30s scrapes, {args.days} days):")
    if missing := [name for name, result in ratios.items() if not result]:
        print(f"no 30-day error ratio recorded by: {', '.join(missing)}", file=sys.stderr)
        return 1
    for name in groups:
        ratio = float(ratios[name][0]["value"][1])
        print(f"  {name:6} {medians[name] * 1000:9.2f} ms  ({len(groups[name])} group(s)); "
              f"30d error ratio {ratio:.6f} (true {true_ratio():.6f})")
    print(f"  ours vs sloth: {medians['sloth'] / medians['ours']:.1f}x cheaper; "
          f"ours vs naive: {medians['naive'] / medians['ours']:.1f}x cheaper")
    return 0


if __name__ == "__main__":
    sys.exit(main())
