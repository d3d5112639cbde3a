"""The 30-day error ratio read from hourly means, against the exact ratio, in promtool.

The generated `slo-hourly` group records the hour's mean of each 5m rate every 5m, and the
report's 30d ratio averages those means (8,640 samples per series instead of 43,200). Here
the 5m rates the `slo` group records every minute are hand-written input series (a 12h day
at 100 events/s, a 12h night at 10, errors at 0.05/s, and one 1h burst at 5/s), the hourly
group is evaluated by promtool at its own 5m interval, and the report's generated expression
is queried at 30d2h. The exact ratio is worked out here from the same definition (every
minute's rates in the closed 30-day range, summed), not from the generator's model.

Stated bound: with the window's ends at the same time of day, the two agree within 0.05%
(relative); events in the last hour count ``a / 1h`` at age ``a`` (recent ones enter the
ratio over an hour), so a burst in the last 30 minutes counts at most half: the ratio lies
between the exact ratio without it and halfway to the exact ratio with it.
"""

from __future__ import annotations

import http.server
import json
import shutil
import threading
import time
import urllib.parse
from pathlib import Path

import pytest
import servers
import yaml
from rule_helpers import generate_alerts, write_spec
from watchkeeper import promtool

needs_promtool = pytest.mark.skipif(shutil.which("promtool") is None, reason="needs promtool")

LABELS = '{service="shop",slo="availability"}'
WINDOW = 30 * 24 * 60  # minutes
END = WINDOW + 120  # the query's minute: 30d2h, so the hour before the window has data
HALF_DAY = 12 * 60
DAY_RATE, NIGHT_RATE, ERRORS, BURST = 100.0, 10.0, 0.05, 5.0


def total(minute: int) -> float:
    return DAY_RATE if (minute // HALF_DAY) % 2 == 0 else NIGHT_RATE


def bad(minute: int, burst: range) -> float:
    return BURST if minute in burst else ERRORS


def notation(values: list[float]) -> str:
    """promtool's expanding notation, run-length coded (``v xN`` is N + 1 samples)."""
    out, i = [], 0
    while i < len(values):
        j = i
        while j < len(values) and values[j] == values[i]:
            j += 1
        out.append(f"{values[i]:g}x{j - i - 1}")
        i = j
    return " ".join(out)


def exact(burst: range) -> float:
    """The 30-day ratio of the 1m-sampled 5m rates: every minute of the closed range
    [END - 30d, END] weighs the same."""
    minutes = range(END - WINDOW, END + 1)
    return sum(bad(m, burst) for m in minutes) / sum(total(m) for m in minutes)


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("hourly")
    document = {"version": 1, "defaults": {"alertmanager": {"receivers": "none"}},
                "services": [{"name": "shop", "selector": {"job": "shop"}, "language": "go",
                              "http": {}, "slos": [{"name": "availability",
                                                    "objective": "99.9%",
                                                    "indicator": "availability"}]}]}
    return generate_alerts(write_spec(folder, document), folder)


def window_ratio(alerts: Path) -> str:
    """The report's generated 30-day ratio expression, as written."""
    rules = yaml.safe_load((alerts / "shop.slo-report.rules.yml").read_text())
    return next(r["expr"] for g in rules["groups"] for r in g["rules"]
                if r.get("record") == "slo:sli_error:ratio_rate30d")


def run(alerts: Path, burst: range, check: str) -> promtool.Result:
    """promtool evaluating the hourly group at its own interval over the hand-written 5m
    rates, then `check` (1 when it holds) at END."""
    hourly = yaml.safe_load((alerts / "shop.slo-hourly.rules.yml").read_text())
    interval = hourly["groups"][0]["interval"]
    test = {
        "rule_files": ["../shop.slo-hourly.rules.yml"],
        "evaluation_interval": interval,
        "tests": [{
            "interval": "1m",
            "input_series": [
                {"series": f"slo:bad_events:rate5m{LABELS}",
                 "values": notation([bad(m, burst) for m in range(END + 1)])},
                {"series": f"slo:events:rate5m{LABELS}",
                 "values": notation([total(m) for m in range(END + 1)])}],
            "promql_expr_test": [{"expr": check, "eval_time": f"{END}m",
                                  "exp_samples": [{"labels": LABELS, "value": 1}]}],
        }],
    }
    path = alerts / "tests" / "hourly_accuracy.test.yml"
    path.write_text(yaml.safe_dump(test, width=1 << 20))
    try:
        return promtool.test_rules([path])
    finally:
        path.unlink()


def test_hourly_group_is_5m_and_the_window_ratio_reads_it(generated):
    hourly = yaml.safe_load((generated / "shop.slo-hourly.rules.yml").read_text())
    assert [(g["name"], g["interval"]) for g in hourly["groups"]] == [("shop-slo-hourly", "5m")]
    assert {r["record"]: r["expr"] for r in hourly["groups"][0]["rules"]} == {
        "slo:bad_events:rate1h": f"avg_over_time(slo:bad_events:rate5m{LABELS}[1h])",
        "slo:events:rate1h": f"avg_over_time(slo:events:rate5m{LABELS}[1h])"}
    expr = window_ratio(generated)
    assert f"slo:bad_events:rate1h{LABELS}[30d]" in expr
    assert f"slo:events:rate1h{LABELS}[30d]" in expr


@needs_promtool
def test_30d_ratio_from_hourly_means_is_within_0_05_percent_of_exact(generated):
    burst = range(10 * 24 * 60, 10 * 24 * 60 + 60)  # an hour of 100x errors on day 10
    truth = exact(burst)
    # the burst matters: without it the ratio would be ~15% lower
    assert truth > 1.1 * exact(range(0))
    result = run(generated, burst,
                 f"abs(({window_ratio(generated)}) / {truth!r} - 1) < bool 0.0005")
    assert result.ok, f"30d ratio not within 0.05% of {truth!r}:\n{result.output}"


@needs_promtool
def test_a_burst_in_the_last_half_hour_enters_the_30d_ratio_partly(generated):
    burst = range(END - 30, END + 1)
    low, high = exact(range(0)), exact(burst)
    assert high > 1.05 * low
    half = low + (high - low) / 2
    ratio = f"({window_ratio(generated)})"
    result = run(generated, burst, f"({ratio} > bool {low!r}) * ({ratio} < bool {half!r})")
    assert result.ok, f"30d ratio not between {low!r} and {half!r}:\n{result.output}"


@needs_promtool
def test_a_window_under_7_days_reads_the_5m_rates_and_has_no_hourly_group(tmp_path):
    """5 days (ticket-3d off: its window is not shorter): the ratio reads the 5m rates as
    before, no hourly file is written, and the generated report test passes."""
    document = {"version": 1, "defaults": {"alertmanager": {"receivers": "none"}},
                "services": [{"name": "shop", "selector": {"job": "shop"}, "language": "go",
                              "http": {}, "slos": [{
                                  "name": "availability", "objective": "99.9%",
                                  "indicator": "availability", "window": "5d",
                                  "alerting": {"tiers": {"ticket-3d": False}}}]}]}
    alerts = generate_alerts(write_spec(tmp_path, document), tmp_path)
    assert not (alerts / "shop.slo-hourly.rules.yml").exists()
    rules = yaml.safe_load((alerts / "shop.slo-report.rules.yml").read_text())
    expr = next(r["expr"] for r in rules["groups"][0]["rules"]
                if r.get("record") == "slo:sli_error:ratio_rate5d")
    assert f"slo:events:rate5m{LABELS}[5d]" in expr and "rate1h" not in expr
    report = yaml.safe_load((alerts / "tests" / "shop.slo-report.test.yml").read_text())
    assert report["rule_files"] == ["../shop.slo.rules.yml", "../shop.slo-report.rules.yml"]
    result = promtool.test_rules([alerts / "tests" / "shop.slo-report.test.yml"])
    assert result.ok, result.output


# --- On a real Prometheus ----------------------------------------------------------------------


class _Shop(http.server.BaseHTTPRequestHandler):
    """The shop's request counter: 100 requests a second, 1 of them a 500."""

    started = time.monotonic()

    def do_GET(self) -> None:
        seconds = time.monotonic() - self.started
        body = "".join(f'http_request_duration_seconds_count{{code="{code}"}} {rate * seconds}\n'
                       for code, rate in (("200", 99.0), ("500", 1.0))).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


def _query(url: str, expr: str) -> list[dict]:
    _, body = servers.get(f"{url}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
    return json.loads(body)["data"]["result"]


@pytest.mark.slow
def test_prometheus_evaluates_the_hourly_group_at_its_own_interval(tmp_path):
    """Prometheus 2.42 on the generated rules at time_scale 60 (hourly means of a minute,
    every 5s; rules every 1s): the hourly group runs every 5s while the 5s rates are
    recorded every second, no rule fails, and the 12h ratio is read from the means."""
    document = {"version": 1, "defaults": {"alertmanager": {"receivers": "none"},
                                           "prometheus": {"evaluation_interval": "1s"}},
                "services": [{"name": "shop", "selector": {"job": "shop"}, "language": "go",
                              "http": {}, "slos": [{"name": "availability",
                                                    "objective": "99.9%",
                                                    "indicator": "availability",
                                                    "window": "12h", "time_scale": 60}]}]}
    alerts = generate_alerts(write_spec(tmp_path, document), tmp_path)
    exporter = http.server.ThreadingHTTPServer((servers.HOST, 0), _Shop)
    threading.Thread(target=exporter.serve_forever, daemon=True).start()
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(alerts / "shop.slo*.rules.yml")],
        "scrape_configs": [{"job_name": "shop", "static_configs": [
            {"targets": [f"{servers.HOST}:{exporter.server_address[1]}"]}]}]}))
    prometheus = servers.prometheus_daemon(config).start()
    try:
        ratio = 'slo:sli_error:ratio_rate12h{service="shop",slo="availability"}'
        deadline = time.monotonic() + 60
        while not _query(prometheus.url, "count_over_time(slo:events:rate1m[21s]) >= 4"):
            assert time.monotonic() < deadline, prometheus.log()[-2000:]
            time.sleep(1)
        _, body = servers.get(prometheus.url + "/api/v1/rules")
        groups = {g["name"]: g for g in json.loads(body)["data"]["groups"]}
        assert {name: g["interval"] for name, g in groups.items()} == {
            "shop-slo": 1, "shop-slo-hourly": 5, "shop-slo-report": 1}
        assert not [(r["name"], r["lastError"]) for g in groups.values() for r in g["rules"]
                    if r["health"] != "ok"]
        hourly = _query(prometheus.url, "count_over_time(slo:events:rate1m[20s])")
        rates = _query(prometheus.url, "count_over_time(slo:events:rate5s[20s])")
        assert int(hourly[0]["value"][1]) in (4, 5)  # every 5s
        assert int(rates[0]["value"][1]) >= 15  # every second
        value = float(_query(prometheus.url, ratio)[0]["value"][1])
        # read from the data: above 0, at most the 1% of errors (seconds after start, the
        # few means so far include the errors query's 0 from before the first rate; the
        # accuracy is the promtool tests' above)
        assert 0.0 < value <= 0.0101, value
    finally:
        prometheus.stop()
        exporter.shutdown()
