"""`watchkeeper import sloth|openslo` on Sloth's public examples, run against Sloth's own rules.

The fixtures are Sloth's example specs and the rules Sloth generated for them, copied
unchanged from github.com/slok/sloth (examples/ and examples/_gen/, commit 0e395d81, Apache
2.0). The same input series go through Sloth's rules and through the rules watchkeeper
generates from the import; at every check time both must have the same SLOs paging and
ticketing. What "should" fire comes from a small model of the SRE Workbook table written
here (not the generator's), and checks sit only where that model is stable for 15 minutes
either side, since the two implementations compute long windows differently (Sloth: raw
rates over each window; watchkeeper: averages of 5m rates).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from watchkeeper import promtool
from watchkeeper.cli import main
from watchkeeper.generate import alert_files
from watchkeeper.load import load_spec
from watchkeeper.writers import write_tree

FIXTURES = Path(__file__).parent / "fixtures"
pytestmark = pytest.mark.skipif(shutil.which("promtool") is None, reason="needs promtool")

# (severity, long window, short window, factor) in minutes, 30-day SLOs: the Workbook table.
TABLE = [("page", 60, 5, 14.4), ("page", 360, 30, 6.0), ("ticket", 1440, 120, 3.0),
         ("ticket", 4320, 360, 1.0)]
HISTORY, BURN = 60, 120  # minutes of health, then of burn
WIFI_CLIENTS = 20
MARGIN, STEP = 15, 5


@dataclass(frozen=True)
class Slo:
    service: str
    name: str
    budget: float
    feed: str  # which input series it reads
    sloth_name: str = ""  # Sloth's name when it differs (OpenSLO: "<name>-0")


@dataclass(frozen=True)
class Example:
    file: str
    importer: str
    slos: tuple[Slo, ...]
    feeds: dict[str, Callable[[list[float]], list[dict]]]  # bad share per minute -> series
    sloth_alerts: bool = True  # Sloth's OpenSLO import generates no alerts at all
    fors: tuple[int, ...] = (0, 0, 0, 0)  # minutes; imports of Sloth specs keep its none


def _mean(shares: list[float], t: int, window: int) -> float:
    part = shares[max(0, t - window):t]
    return sum(part) / len(part) if part else 0.0


def expected(slo: Slo, shares: list[float], t: int,
             fors: tuple[int, ...] = (0, 0, 0, 0)) -> set[str]:
    """Severities firing at minute `t` per the table, each tier after its `for`."""
    def held(u: int, long: int, short: int, factor: float) -> bool:
        return (_mean(shares, u, long) > factor * slo.budget
                and _mean(shares, u, short) > factor * slo.budget)
    return {severity for (severity, long, short, factor), wait in zip(TABLE, fors, strict=True)
            if t >= wait and all(held(u, long, short, factor) for u in range(t - wait, t + 1))}


def _counter(increments: list[float]) -> str:
    values, total = ["0"], 0.0
    for inc in increments:
        total = round(total + inc, 9)
        values.append(repr(total))
    return " ".join(values)


def _http(metric: str, labels: str) -> Callable[[list[float]], list[dict]]:
    """Requests at 1000/minute, the given share of them failing (code 500)."""
    def build(shares: list[float]) -> list[dict]:
        return [
            {"series": f'{metric}{{{labels}code="200"}}',
             "values": _counter([1000 * (1 - s) for s in shares])},
            {"series": f'{metric}{{{labels}code="500"}}',
             "values": _counter([1000 * s for s in shares])},
        ]
    return build


def _apiserver_latency(shares: list[float]) -> list[dict]:
    """1000 requests a minute, the share slower than 400ms."""
    return [
        {"series": 'apiserver_request_duration_seconds_count{verb="GET"}',
         "values": _counter([1000.0] * len(shares))},
        {"series": 'apiserver_request_duration_seconds_bucket{verb="GET",le="0.4"}',
         "values": _counter([1000 * (1 - s) for s in shares])},
    ]


def _wifi(low: float) -> Callable[[list[float]], list[dict]]:
    """20 clients; the share of them reports satisfaction `low`, the rest 0.95 (Sloth's 3d
    subqueries over more exceed promtool's sample limit)."""
    def build(shares: list[float]) -> list[dict]:
        return [{"series": f'unifipoller_client_satisfaction_ratio{{client="c{i}"}}',
                 "values": " ".join(repr(low if i < round(s * WIFI_CLIENTS) else 0.95)
                                    for s in [shares[0], *shares])}
                for i in range(WIFI_CLIENTS)]
    return build


def _wifi_average(shares: list[float]) -> list[dict]:
    """10 clients all reporting 1 - share (the raw SLI averages satisfaction)."""
    return [{"series": f'unifipoller_client_satisfaction_ratio{{client="c{i}"}}',
             "values": " ".join(repr(round(1 - s, 9)) for s in [shares[0], *shares])}
            for i in range(10)]


HTTP = _http("http_request_duration_seconds_count", 'job="myservice",')
EXAMPLES = {
    "getting-started": Example("getting-started.yml", "sloth", (
        Slo("myservice", "requests-availability", 0.001, "http"),), {"http": HTTP}),
    "multifile": Example("multifile.yml", "sloth", (
        Slo("myservice", "requests-availability", 0.001, "http"),
        Slo("myservice2", "requests-availability", 0.0001, "http")), {"http": HTTP}),
    "kubernetes-apiserver": Example("kubernetes-apiserver.yml", "sloth", (
        Slo("k8s-apiserver", "requests-availability", 0.001, "requests"),
        Slo("k8s-apiserver", "requests-latency", 0.01, "latency")),
        {"requests": _http("apiserver_request_total", 'verb="GET",'),
         "latency": _apiserver_latency}),
    "home-wifi": Example("home-wifi.yml", "sloth", (
        Slo("home-wifi", "good-wifi-client-satisfaction", 0.05, "wifi"),
        Slo("home-wifi", "risk-wifi-client-satisfaction", 0.001, "wifi")),
        {"wifi": _wifi(0.4)}),
    "raw-home-wifi": Example("raw-home-wifi.yml", "sloth", (
        Slo("home-wifi", "wifi-client-satisfaction", 0.05, "wifi"),), {"wifi": _wifi_average}),
    "openslo-getting-started": Example("openslo-getting-started.yml", "openslo", (
        Slo("my-service", "sloth-slo-my-service", 0.001, "http",
            sloth_name="sloth-slo-my-service-0"),), {"http": HTTP}, sloth_alerts=False,
        fors=(2, 5, 15, 15)),  # a native SLO's default `for`s (docs/slo.md)
}
BURNS = (1000.0, 20.0, 4.0, 0.5)  # page on 1h, page on 6h and tickets, tickets only, quiet


def _shares(example: Example, burn: float) -> dict[str, list[float]]:
    """Per feed, the bad share each minute: `burn`× the budget of its first SLO, after a
    healthy hour (home-wifi's clients make it whole twentieths)."""
    out = {}
    for slo in example.slos:
        if slo.feed not in out:
            share = min(1.0, burn * slo.budget)
            if slo.feed == "wifi":
                share = round(share * WIFI_CLIENTS) / WIFI_CLIENTS
            out[slo.feed] = [0.0] * HISTORY + [share] * BURN
    return out


def _check_times(example: Example, shares: dict[str, list[float]]) -> list[int]:
    length = HISTORY + BURN
    def state(t: int) -> list[set[str]]:
        return [expected(slo, shares[slo.feed], t, example.fors) for slo in example.slos]
    return [t for t in range(STEP * 3, length - MARGIN + 1, STEP)
            if all(state(u) == state(t) for u in range(t - MARGIN, t + MARGIN + 1))]


def _test_file(example: Example, rule_files: list[str], labels: tuple[str, str, str],
               mapping: dict[str, str], alerts: bool) -> dict:
    service_l, slo_l, severity_l = labels
    groups = []
    for burn in BURNS:
        shares = _shares(example, burn)
        series = [s for feed, per_minute in shares.items()
                  for s in example.feeds[feed](per_minute)]
        checks = []
        for t in _check_times(example, shares):
            samples = [
                {"labels": f'{{{service_l}="{slo.service}",{slo_l}="{slo_label}",'
                           f'{severity_l}="{mapping[severity]}"}}', "value": 1}
                for slo in example.slos
                for slo_label in [slo.sloth_name or slo.name if mapping["page"] == "page"
                                  else slo.name]
                for severity in sorted(expected(slo, shares[slo.feed], t, example.fors))
            ] if alerts else []
            selector = "burn_tier!=\"\"" if mapping["page"] == "critical" else \
                "sloth_severity!=\"\""
            checks.append({
                "expr": f'max by ({service_l}, {slo_l}, {severity_l}) '
                        f'(ALERTS{{alertstate="firing",{selector}}})',
                "eval_time": f"{t}m", "exp_samples": samples})
        groups.append({"name": f"{burn}x", "interval": "1m", "input_series": series,
                       "promql_expr_test": checks})
    return {"rule_files": rule_files, "evaluation_interval": "1m", "tests": groups}


def _import(example: Example, tmp_path: Path) -> Path:
    spec = tmp_path / "imported.yaml"
    assert main(["import", example.importer, str(FIXTURES / "sloth" / example.file),
                 "-o", str(spec)]) == 0
    write_tree(tmp_path, alert_files(load_spec(spec), spec.name), owned=("alerts",))
    return tmp_path / "alerts"


@pytest.mark.slow
@pytest.mark.parametrize("name", list(EXAMPLES))
def test_imported_slos_page_and_ticket_like_sloths_own_rules(name, tmp_path):
    example = EXAMPLES[name]
    alerts = _import(example, tmp_path)
    ours = sorted(p.name for p in alerts.glob("*.slo.rules.yml"))
    ours_test = alerts / "tests" / "compare.test.yml"
    ours_test.write_text(yaml.safe_dump(_test_file(
        example, [f"../{r}" for r in ours], ("service", "slo", "severity"),
        {"page": "critical", "ticket": "warning"}, alerts=True)))
    # promtool reads one YAML document per rule file; Sloth writes one per input document
    sloth_files = []
    generated = (FIXTURES / "sloth_gen" / example.file).read_text()
    for i, document in enumerate(d for d in yaml.safe_load_all(generated) if d):
        sloth_files.append(f"sloth-{i}.yml")
        (tmp_path / sloth_files[-1]).write_text(yaml.safe_dump(document))
    sloth_test = tmp_path / "sloth.test.yml"
    sloth_test.write_text(yaml.safe_dump(_test_file(
        example, sloth_files, ("sloth_service", "sloth_slo", "sloth_severity"),
        {"page": "page", "ticket": "ticket"}, alerts=example.sloth_alerts)))
    sloth_result = promtool.test_rules([sloth_test])
    assert sloth_result.ok, "Sloth's rules disagree with the table:\n" + sloth_result.output
    result = promtool.test_rules([ours_test])
    assert result.ok, result.output


def test_checks_cover_pages_tickets_and_quiet():
    """The comparison is not vacuous: across the burns, every example has checks where its
    SLOs page, ticket, and stay quiet."""
    for example in EXAMPLES.values():
        seen: set[str] = set()
        for burn in BURNS:
            shares = _shares(example, burn)
            for t in _check_times(example, shares):
                for slo in example.slos:
                    seen |= expected(slo, shares[slo.feed], t, example.fors) or {"quiet"}
        assert seen == {"page", "ticket", "quiet"}, example.file
