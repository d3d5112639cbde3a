"""Rule evaluation cost of one 30-day SLO on a real Prometheus holding 30 days of history.

Three rule sets for the same SLO (Sloth's getting-started example: 99.9% of
``http_request_duration_seconds_count{job="myservice"}`` not 5xx/429), evaluated on the
same data, each by a Prometheus of its own, one after the other:

- ours: the rules `watchkeeper import sloth` + `watchkeeper generate` write for it;
- Sloth: the rules Sloth itself generated for it (tests/slo/fixtures/sloth_gen/);
- naive: the 30-day error ratio read straight from the raw series, ``rate(x[30d])``;
- none: no rules (the Prometheus' own cost of scraping and serving, subtracted);
- base (with ``--baseline DIR``): ours as an older generator writes them (DIR holds its
  ``generator/`` tree, e.g. ``git archive main generator | tar -x -C DIR``), side by side.

Time runs 60/``--interval`` times faster than in production: rules evaluate every
``--interval`` seconds where Prometheus' default is 1m, so a group's own ``interval`` (ours'
hourly means: 5m) is scaled alike (5m -> 20s at 4s), and its duration counts once per its
own interval in the wall time per evaluation.

Why one Prometheus per set: loaded into one Prometheus, the sets' groups evaluate at the
same moment on a 2-core machine, and a group's duration is wall time, so each set's figure
carried the others' CPU (runs swung 9-295 ms). Here each set runs alone; the main figure is
the process CPU (``process_cpu_seconds_total``, user+sys) per evaluation interval, net of
`none`, which a neighbour slows but barely inflates; the groups' wall durations are printed
beside it. ``--rounds`` rounds interleave the sets (order rotating), medians over rounds.

History: 10 instances x 2 codes scraped every 30s for 30 days, backfilled with
``promtool tsdb create-blocks-from openmetrics``, plus 30 days of the 5m recordings each
rule set reads (as a Prometheus that ran these rules for a month would hold). A small
exporter in this process continues the same series live, so the short windows stay fresh.
Traffic follows a day/night cycle (night at 10% of peak) with a constant number of errors
per second, so errors are a larger share at night: the 30-day ratio of averages is the
true error ratio; an average of 5m ratios over-weights the night.

Reports the medians, the ratios to ours, each set's 30-day error ratio against the true
one, and the 1-minute load average as each run began. Usage (heavy: run under the lock):

    flock /tmp/wk-heavy.lock .venv/bin/python bench/slo_eval.py
"""

from __future__ import annotations

import argparse
import dataclasses
import http.server
import json
import math
import os
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
        for name, labels, value, first, every in (
                ("slo:bad_events:rate5m", ours, lambda _: ERRORS * INSTANCES, 300, 60),
                ("slo:events:rate5m", ours, lambda t: requests(t) * INSTANCES, 300, 60),
                ("slo:sli_error:ratio_rate5m", sloth, lambda t: ERRORS / requests(t), 300, 60),
                # ours' hourly means (every 5m) of the 5m rates above (61 minutes, both ends)
                ("slo:bad_events:rate1h", ours, lambda _: ERRORS * INSTANCES, 3900, 300),
                ("slo:events:rate1h", ours, lambda t: statistics.fmean(
                    requests(t - 60 * k) for k in range(61)) * INSTANCES, 3900, 300)):
            out.write(f"# TYPE {name} unknown\n")
            t = start + first
            while t <= end:
                out.write(f"{name}{labels} {value(t):.9g} {t:.0f}\n")
                t += every
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


def own_metrics(port: int) -> tuple[dict[str, float], float]:
    """`prometheus_rule_group_last_duration_seconds` by group and
    `process_cpu_seconds_total`, from Prometheus' /metrics (it does not scrape itself)."""
    with urllib.request.urlopen(f"http://{HOST}:{port}/metrics", timeout=30) as response:
        text = response.read().decode()
    durations, cpu = {}, math.nan
    for line in text.splitlines():
        if line.startswith("prometheus_rule_group_last_duration_seconds{"):
            labels, value = line.rsplit(" ", 1)
            group = labels.split('rule_group="', 1)[1].split('"', 1)[0]
            durations[group.split(";")[-1]] = float(value)
        elif line.startswith("process_cpu_seconds_total "):
            cpu = float(line.split()[1])
    return durations, cpu


def our_rules(folder: Path, interval: int, source: Path | None = None) -> list[Path]:
    """Import Sloth's example and generate watchkeeper's rules for it (the CLI a user runs),
    with this checkout's generator or the one under `source`: the SLO's rule files (its
    alerts' group, the hourly means where there are some, the report group holding the
    30-day ratio; not the service's up/absent alerts, which Sloth does not write), each
    group's own interval scaled to the benchmark's pace (`scaled`)."""
    spec = folder / "spec.yaml"
    cli = [sys.executable, "-m", "watchkeeper.cli"]
    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = str(source / "generator")
    subprocess.run([*cli, "import", "sloth", str(SLOTH_SPEC), "-o", str(spec)], check=True,
                   capture_output=True, env=env)
    subprocess.run([*cli, "generate", str(spec), "--out", str(folder), "--only", "alerts"],
                   check=True, capture_output=True, env=env)
    paths = sorted((folder / "alerts").glob("myservice.slo*.rules.yml"))
    for path in paths:
        document = yaml.safe_load(path.read_text())
        for group in document["groups"]:
            if "interval" in group:
                group["interval"] = f"{scaled(group['interval'], interval):g}s"
        path.write_text(yaml.safe_dump(document, sort_keys=False))
    return paths


def scaled(duration: str, interval: int) -> float:
    """A group's own interval at the benchmark's pace: `interval` seconds stand for 1m."""
    return seconds(duration) * interval / 60


def seconds(duration: str) -> float:
    return {"s": 1, "m": 60, "h": 3600}[duration[-1]] * float(duration[:-1])


def sloth_rules(folder: Path) -> list[Path]:
    paths = []
    for i, document in enumerate(d for d in yaml.safe_load_all(SLOTH_RULES.read_text()) if d):
        paths.append(folder / f"sloth-{i}.rules.yml")
        paths[-1].write_text(yaml.safe_dump(document))
    return paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3,
                        help="Prometheus runs per rule set, interleaved (order rotates)")
    parser.add_argument("--samples", type=int, default=6,
                        help="evaluations measured per Prometheus run")
    parser.add_argument("--interval", type=int, default=4, help="rule evaluation interval (s)")
    parser.add_argument("--days", type=int, default=30, help="days of history (smoke: 1)")
    parser.add_argument("--baseline", type=Path, default=None, metavar="DIR",
                        help="also run `base`: ours as written by the generator under DIR "
                             "(DIR/generator), side by side")
    parser.add_argument("--sets", default=None,
                        help="comma-separated rule sets to run (default: all; `none` is "
                             "always run)")
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
        subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", "-q",
                        "--max-block-duration=744h", str(folder / "history.om"),
                        str(folder / "data")], check=True)
        (folder / "history.om").unlink()
        print(f"backfilled {args.days} days in {time.monotonic() - began:.0f}s", flush=True)
        Exporter.counters = counters
        # in this process: it binds port 0 itself, so no other process can take its port
        server = http.server.ThreadingHTTPServer((HOST, 0), Exporter)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            sets = rule_sets(folder, args)
            runs = run_rounds(folder, sets, server.server_address[1], args)
        except RuntimeError as error:
            print(error, file=sys.stderr)
            return 1
        finally:
            server.shutdown()
    return report(runs, args)


def rule_sets(folder: Path, args: argparse.Namespace) -> dict[str, list[Path]]:
    """Each rule set's files, plus `none` (no rules): the Prometheus' own cost of
    scraping and serving, subtracted from the others' CPU."""
    naive = folder / "naive.rules.yml"
    naive.write_text(yaml.safe_dump(NAIVE))
    sets = {}
    if args.baseline is not None:
        (folder / "base").mkdir()
        sets["base"] = our_rules(folder / "base", args.interval, args.baseline)
    sets.update({"ours": our_rules(folder, args.interval), "sloth": sloth_rules(folder),
                 "naive": [naive], "none": []})
    if args.sets:
        wanted = {*args.sets.split(","), "none"}
        sets = {name: paths for name, paths in sets.items() if name in wanted}
    return sets


@dataclasses.dataclass
class Run:
    """One Prometheus evaluating one rule set alone."""

    name: str
    cpu: float  # process CPU seconds (user+sys) per evaluation interval
    durations: list[float]  # summed group durations (wall), one per evaluation
    load: float  # 1-minute load average when the run began
    ratio: float | None  # the set's 30-day error ratio at the end of the run
    rules: dict[str, float]  # per rule: median evaluationTime (s) over the samples


def run_rounds(folder: Path, sets: dict[str, list[Path]], exporter: int,
               args: argparse.Namespace) -> list[Run]:
    """`--rounds` rounds; in each, every set in its own Prometheus (fresh copy of the
    backfilled TSDB), one after the other, the order rotating so no set always follows
    the same one."""
    names = list(sets)
    runs = []
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            runs.append(run_one(folder, name, sets[name], exporter, args))
            run = runs[-1]
            print(f"  round {r + 1} {name:6} cpu {run.cpu * 1000:7.1f} ms/eval, wall "
                  f"{statistics.median(run.durations or [0]) * 1000:7.1f} ms, "
                  f"load {run.load:.2f}", flush=True)
    return runs


def run_one(folder: Path, name: str, rules: list[Path], exporter: int,
            args: argparse.Namespace) -> Run:
    work = folder / f"run-{name}"
    shutil.copytree(folder / "data", work / "data")
    # each group's duration counts once per its own interval (ours' hourly group: 1/5)
    groups = {g["name"]: args.interval / seconds(g.get("interval", f"{args.interval}s"))
              for p in rules for g in yaml.safe_load(p.read_text())["groups"]}
    config = {"global": {"scrape_interval": f"{SCRAPE}s",
                         "evaluation_interval": f"{args.interval}s"},
              "rule_files": [str(p) for p in rules],
              "scrape_configs": [{"job_name": "myservice", "honor_labels": True,
                                  "static_configs": [{"targets": [f"{HOST}:{exporter}"]}]}]}
    (work / "prometheus.yml").write_text(yaml.safe_dump(config))
    # a port reserved as the tests reserve theirs (tests/servers.py): outside the
    # ephemeral range, locked for this process, so a test run beside it cannot take it
    port = servers.free_port()
    prometheus = servers.Daemon(
        ["prometheus", f"--config.file={work / 'prometheus.yml'}",
         f"--storage.tsdb.path={work / 'data'}", "--storage.tsdb.retention.time=90d",
         f"--web.listen-address={HOST}:{port}"], port, log_path=work / "prometheus.log")
    load = os.getloadavg()[0]
    try:
        prometheus.start(timeout=600)  # ready once it has loaded the backfilled blocks
        try:
            return measure(port, name, groups, load, args)
        except RuntimeError as error:
            raise RuntimeError(f"{error}\n{prometheus.log()[-3000:]}") from None
    finally:
        prometheus.stop()
        shutil.rmtree(work)


def measure(port: int, name: str, groups: dict[str, float], load: float,
            args: argparse.Namespace) -> Run:
    """CPU per evaluation interval and each evaluation's wall time (each group's last
    duration times its weight: evaluations per interval), over `--samples` intervals after
    the first evaluations (cold caches) have passed; and each rule's evaluationTime."""
    deadline = time.monotonic() + 600
    while not all(own_metrics(port)[0].get(g, 0) > 0 for g in groups):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name}: rule groups never evaluated: {groups}")
        time.sleep(0.5)
    time.sleep(args.interval)  # one more evaluation before measuring
    _, cpu0 = own_metrics(port)
    t0 = time.monotonic()
    durations = []
    per_rule: dict[str, list[float]] = {}
    for _ in range(args.samples):
        time.sleep(args.interval)
        values, _ = own_metrics(port)
        if groups:
            durations.append(sum(values[g] * weight for g, weight in groups.items()))
            for rule, seconds in rule_times(port).items():
                per_rule.setdefault(rule, []).append(seconds)
    values, cpu1 = own_metrics(port)
    evaluations = (time.monotonic() - t0) / args.interval
    ours = 'slo:sli_error:ratio_rate30d{service="myservice"}'
    result = query(port, {"ours": ours, "base": ours,
                          "sloth": 'slo:sli_error:ratio_rate30d{sloth_service="myservice"}',
                          "naive": "naive:sli_error:ratio_rate30d"}.get(name, "vector(0)"))
    ratio = float(result[0]["value"][1]) if result and name != "none" else None
    return Run(name, (cpu1 - cpu0) / evaluations, durations, load, ratio,
               {rule: statistics.median(times) for rule, times in per_rule.items()})


def rule_times(port: int) -> dict[str, float]:
    """Each rule's last evaluationTime (s) from /api/v1/rules, keyed by group and name
    (rules sharing both, such as the burn tiers' alerts, summed). A group with its own
    interval reports its last evaluation's: per its evaluation, not per interval."""
    url = f"http://{HOST}:{port}/api/v1/rules"
    with urllib.request.urlopen(url, timeout=30) as response:
        groups = json.load(response)["data"]["groups"]
    out: dict[str, float] = {}
    for group in groups:
        for rule in group["rules"]:
            key = f"{group['name']}: {rule['name']}"
            out[key] = out.get(key, 0.0) + rule.get("evaluationTime", 0.0)
    return out


def report(runs: list[Run], args: argparse.Namespace) -> int:
    """Medians over rounds; CPU net of the `none` run (Prometheus without rules)."""
    names = [n for n in dict.fromkeys(r.name for r in runs)]
    cpu = {n: statistics.median(r.cpu for r in runs if r.name == n) for n in names}
    wall = {n: statistics.median(d for r in runs if r.name == n for d in r.durations)
            for n in names if n != "none"}
    net = {n: cpu[n] - cpu["none"] for n in wall}
    loads = [r.load for r in runs]
    print(f"\neach set in its own Prometheus, {args.rounds} interleaved rounds x "
          f"{args.samples} evaluations every {args.interval}s (10 instances x 2 codes, 30s "
          f"scrapes, {args.days} days); load average {min(loads):.2f}-{max(loads):.2f} "
          f"(median {statistics.median(loads):.2f}):")
    print(f"  none   process CPU {cpu['none'] * 1000:7.1f} ms per interval (no rules)")
    if missing := [n for n in wall if not any(r.ratio is not None
                                              for r in runs if r.name == n)]:
        print(f"no 30-day error ratio recorded by: {', '.join(missing)}", file=sys.stderr)
        return 1
    for n in wall:
        ratio = next(r.ratio for r in reversed(runs) if r.name == n and r.ratio is not None)
        print(f"  {n:6} CPU {net[n] * 1000:7.1f} ms/eval net ({cpu[n] * 1000:.1f} raw), "
              f"wall {wall[n] * 1000:7.1f} ms; 30d error ratio {ratio * 100:.5f}% "
              f"(true {true_ratio() * 100:.5f}%, {ratio / true_ratio() - 1:+.3%})")
    for other in ("base", "sloth", "naive"):
        if other in net and "ours" in net:
            print(f"  {other} / ours: CPU {net[other] / net['ours']:.1f}x, "
                  f"wall {wall[other] / wall['ours']:.1f}x")
    for n in wall:
        times: dict[str, list[float]] = {}
        for r in runs:
            if r.name == n:
                for rule, seconds in r.rules.items():
                    times.setdefault(rule, []).append(seconds)
        ranked = sorted(((statistics.median(v), k) for k, v in times.items()), reverse=True)
        by_group: dict[str, float] = {}
        for t, k in ranked:
            by_group[k.split(": ")[0]] = by_group.get(k.split(": ")[0], 0.0) + t
        print(f"  {n:6} rules' evaluationTime (medians over rounds; a group with its own "
              "interval: per its evaluation): groups " + ", ".join(
            f"{g} {t * 1000:.1f} ms" for g, t in by_group.items()) + "; top rules " + "; ".join(
                f"{k} {t * 1000:.1f} ms" for t, k in ranked[:3]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
