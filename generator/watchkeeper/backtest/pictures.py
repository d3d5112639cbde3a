"""The browser report of `watchkeeper backtest --out DIR`: index.html and one PNG per service.

Each alert whose expression compares a signal with a constant budget (``signal > 0.05 ...``)
gets a panel: the signal's value over the range (one line per series), its budgets as
horizontal lines, and its firing episodes shaded by severity. Alerts without such a budget
(absent(), leak trends) appear on a timeline of episodes below. Needs the ``report`` extra
(matplotlib); nothing else in watchkeeper imports it.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from watchkeeper.backtest import report
from watchkeeper.backtest.client import BacktestError, Client
from watchkeeper.backtest.engine import Episode, Plan, Window
from watchkeeper.backtest.promql import Inliner, PromQLError, split_comparison
from watchkeeper.backtest.source import AlertRule

MARKER = ".watchkeeper-backtest"
MAX_PICTURE_POINTS = 1500
COLOURS = {"critical": "#d62728", "warning": "#ff7f0e", "info": "#1f77b4"}
_COMMON = {"service", "severity", "signal", "team"}


@dataclass
class Panel:
    title: str
    signal: str                       # inlined expression of the signal
    budgets: list[tuple[str, str, float]] = field(default_factory=list)  # severity, op, value
    rules: list[AlertRule] = field(default_factory=list)


def panels(rules: list[AlertRule], inliner: Inliner) -> tuple[list[Panel], list[AlertRule]]:
    """Alerts grouped by (name, signal): what to draw as lines, and the rest (timeline)."""
    found: dict[tuple[str, str], Panel] = {}
    others = []
    for rule in rules:
        split = split_comparison(rule.expr)
        if split is None:
            others.append(rule)
            continue
        extra = " ".join(f"{k}={v}" for k, v in rule.labels if k not in _COMMON)
        title = f"{rule.name} {extra}".strip()
        panel = found.get((title, split.signal))
        if panel is None:
            try:
                signal = inliner.inline(split.signal)
            except PromQLError:
                others.append(rule)
                continue
            panel = found[(title, split.signal)] = Panel(title, signal)
        panel.budgets.append((rule.severity, split.op, split.budget))
        panel.rules.append(rule)
    return list(found.values()), others


def picture_step(window: Window) -> int:
    """A step giving at most MAX_PICTURE_POINTS per series, on the evaluation grid."""
    span = window.end - window.start
    return max(1, math.ceil(span / window.step / MAX_PICTURE_POINTS)) * window.step


def _series(client: Client, expr: str, window: Window, step: int) -> dict[str, list]:
    lines: dict[str, list] = {}
    for _, series in client.query_range(expr, window.start, window.end, step,
                                        "a signal query for the report"):
        for metric, values in series:
            name = ",".join(f"{k}={v}" for k, v in sorted(metric.items())
                            if k not in ("__name__", "service")) or "value"
            points = lines.setdefault(name, [])
            points += values
    return lines


def _when(millis: float) -> datetime:
    return datetime.fromtimestamp(millis / 1000, UTC)


def draw_service(path: Path, service: str, client: Client, plan: Plan, rules: list[AlertRule],
                 episodes: list[Episode]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    window = plan.window
    drawn, others = panels(rules, Inliner(plan.recordings, step=window.step / 1000))
    step = picture_step(window)
    rows = len(drawn) + 1
    figure, axes = plt.subplots(rows, 1, figsize=(11, 1.9 * rows + 0.6), sharex=True,
                                squeeze=False)
    figure.suptitle(f"{service}: {_when(window.start):%Y-%m-%d %H:%M} – "
                    f"{_when(window.end):%Y-%m-%d %H:%M} UTC", fontsize=11)
    by_rule: dict[int, list[Episode]] = {}
    for episode in episodes:
        by_rule.setdefault(id(episode.rule), []).append(episode)
    for axis, panel in zip(axes[:, 0], drawn, strict=False):
        for name, points in list(_series(client, panel.signal, window, step).items())[:8]:
            axis.plot([_when(t) for t, _ in points], [v for _, v in points], lw=0.9,
                      label=name)
        for severity, op, value in sorted(set(panel.budgets)):
            axis.axhline(value, color=COLOURS.get(severity, "grey"), ls="--", lw=0.9,
                         label=f"{severity} budget ({op} {value:g})")
        for rule in panel.rules:
            for episode in by_rule.get(id(rule), []):
                axis.axvspan(_when(episode.start), _when(episode.end), alpha=0.18, lw=0,
                             color=COLOURS.get(rule.severity, "grey"))
        axis.set_title(panel.title, fontsize=9, loc="left")
        axis.legend(fontsize=6, loc="upper right", ncol=2)
        axis.tick_params(labelsize=7)
        axis.grid(alpha=0.3)
    _timeline(axes[-1, 0], others, by_rule, window)
    figure.autofmt_xdate()
    figure.tight_layout()
    figure.savefig(path, dpi=72)
    plt.close(figure)


def _timeline(axis, rules: list[AlertRule], by_rule: dict[int, list[Episode]],
              window: Window) -> None:
    fired = [rule for rule in rules if by_rule.get(id(rule))]
    axis.set_title("other alerts (no constant budget): firing episodes", fontsize=9, loc="left")
    for row, rule in enumerate(fired):
        for episode in by_rule[id(rule)]:
            axis.plot([_when(episode.start), _when(episode.end)], [row, row], lw=6,
                      color=COLOURS.get(rule.severity, "grey"), solid_capstyle="butt")
    axis.set_yticks(range(len(fired)), [f"{r.name} ({r.severity})" for r in fired],
                    fontsize=7)
    axis.set_ylim(-1, max(1, len(fired)))
    axis.set_xlim(_when(window.start), _when(window.end))
    if not fired:
        axis.text(0.5, 0.5, "none fired", transform=axis.transAxes, ha="center", fontsize=8)
    axis.grid(alpha=0.3)


def _claim(out: Path, names: list[str]) -> None:
    """Refuse to overwrite files this command did not write (the marker lists its own)."""
    marker = out / MARKER
    owned = set(marker.read_text().split()) if marker.exists() else set()
    clashes = [name for name in names if (out / name).exists() and name not in owned]
    if clashes:
        raise BacktestError(f"{out / clashes[0]} exists and was not written by watchkeeper "
                            "backtest; choose another --out")
    out.mkdir(parents=True, exist_ok=True)
    marker.write_text("\n".join(sorted(owned | set(names))) + "\n")


def write_report(out: Path, client: Client, plan: Plan, episodes: list[Episode]) -> Path:
    services: dict[str, list[AlertRule]] = {}
    for rule, _ in plan.alerts:
        services.setdefault(rule.service, []).append(rule)
    pictures = {service: f"{service}.png" for service in services}
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise BacktestError("--out needs matplotlib: pip install 'watchkeeper[report]'") \
            from None
    _claim(out, ["index.html", *pictures.values()])
    for service, rules in services.items():
        draw_service(out / pictures[service], service, client, plan, rules,
                     [e for e in episodes if e.rule.service == service])
    index = out / "index.html"
    index.write_text(_html(plan, episodes, pictures))
    return index


def _html(plan: Plan, episodes: list[Episode], pictures: dict[str, str]) -> str:
    window = plan.window
    rows = report.rows(episodes, window)
    escape = html.escape
    table = "".join(
        f"<tr><td>{escape(r.rule.name)}</td><td class='{escape(r.rule.severity)}'>"
        f"{escape(r.rule.severity)}</td><td>{escape(r.rule.service)}</td>"
        f"<td>{escape(r.resource)}</td><td>{r.episodes}</td>"
        f"<td>{escape(report.human(r.firing_ms))}</td>"
        f"<td>{escape(report.human(r.longest_ms))}</td>"
        f"<td>{escape(report.when(r.first_start))}</td>"
        f"<td>{escape(report.when(r.last_start))}</td><td>{escape(r.verdict)}</td></tr>"
        for r in rows) or "<tr><td colspan='10'>no alert fired in this range</td></tr>"
    sections = "".join(f"<h2>{escape(service)}</h2><img src='{escape(name)}' "
                       f"alt='{escape(service)} signals, budgets and firing episodes'>"
                       for service, name in pictures.items())
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>watchkeeper backtest</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 6px;font-size:13px}}.critical{{color:#d62728}}
.warning{{color:#ff7f0e}}img{{max-width:100%}}</style></head><body>
<h1>What the alerts would have done</h1>
<p>{escape(report.when(window.start))} – {escape(report.when(window.end))} UTC, evaluated
every {window.step // 1000}s; {len(episodes)} firing episode(s) of {len(plan.alerts)} alert
rules. Shaded: firing episodes (orange warning, red critical); dashed: budgets.</p>
<table><tr><th>alert</th><th>severity</th><th>service</th><th>labels</th><th>episodes</th>
<th>firing</th><th>longest</th><th>first start</th><th>last start</th><th>verdict</th></tr>
{table}</table>{sections}</body></html>
"""
