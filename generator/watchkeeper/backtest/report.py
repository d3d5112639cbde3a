"""Summaries of the replayed episodes: the text table, the JSON document and the verdicts."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from watchkeeper.backtest.engine import Episode, Key, Window
from watchkeeper.backtest.promql import format_duration
from watchkeeper.backtest.source import AlertRule

# Labels every alert of a rule shares; the table shows only the ones telling instances apart.
_RULE_LABELS = {"service", "severity", "signal", "team"}
FLAPPING_MIN_EPISODES = 4
FLAPPING_MEDIAN_MS = 15 * 60_000
NOISY_PER_DAY = 3.0
MOSTLY_FIRING = 0.5


@dataclass(frozen=True)
class Row:
    """One alert instance: (alert, service, severity, distinguishing labels)."""

    rule: AlertRule
    labels: Key
    episodes: int
    firing_ms: int
    longest_ms: int
    first_start: int
    last_start: int
    verdict: str

    @property
    def resource(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.labels if k not in _RULE_LABELS) or "-"


def rows(episodes: Sequence[Episode], window: Window) -> list[Row]:
    groups: dict[tuple[int, Key], list[Episode]] = {}
    rules: dict[int, AlertRule] = {}
    for episode in episodes:
        rules[id(episode.rule)] = episode.rule
        groups.setdefault((id(episode.rule), episode.labels), []).append(episode)
    result = []
    for (rule_id, labels), group in groups.items():
        durations = [e.duration for e in group]
        result.append(Row(rules[rule_id], labels, len(group), sum(durations), max(durations),
                          min(e.start for e in group), max(e.start for e in group),
                          verdict(durations, window)))
    return sorted(result, key=lambda r: (r.rule.service, r.rule.name, r.rule.severity,
                                         r.labels))


def verdict(durations: Sequence[int], window: Window) -> str:
    """A short word for the reviewer when an alert would have been a nuisance."""
    span = max(window.end - window.start, window.step)
    days = span / 86_400_000
    total = sum(durations)
    if total >= MOSTLY_FIRING * span:
        return f"firing {total / span:.0%} of the range: budget below normal"
    median = statistics.median(durations)
    if len(durations) >= FLAPPING_MIN_EPISODES and median < FLAPPING_MEDIAN_MS:
        return f"flapping: {len(durations)} episodes, median {human(median)}"
    if days >= 1 and len(durations) / days >= NOISY_PER_DAY:
        return f"noisy: {len(durations) / days:.1f} episodes a day"
    return ""


def human(millis: float) -> str:
    return format_duration(round(millis / 60_000) * 60 if millis >= 60_000 else millis / 1000)


def when(millis: int, seconds: bool = False) -> str:
    moment = datetime.fromtimestamp(millis / 1000, UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def text(episodes: Sequence[Episode], window: Window, alert_rules: int) -> str:
    """The default report: one line per alert instance that fired, then the quiet count."""
    table = rows(episodes, window)
    header = ("ALERT", "SEVERITY", "SERVICE", "LABELS", "EPISODES", "FIRING", "LONGEST",
              "FIRST START", "LAST START", "VERDICT")
    precise = window.step % 60_000 != 0  # sub-minute steps: show seconds
    lines = [header] + [
        (r.rule.name, r.rule.severity or "-", r.rule.service, r.resource, str(r.episodes),
         human(r.firing_ms), human(r.longest_ms), when(r.first_start, precise),
         when(r.last_start, precise), r.verdict) for r in table]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = [f"backtest {when(window.start, precise)} .. {when(window.end, precise)} UTC, step "
           f"{format_duration(window.step / 1000)}"]
    if table:
        out += ["  ".join(cell.ljust(width) for cell, width in zip(line, widths,
                                                                 strict=True)).rstrip()
                for line in lines]
    fired = {id(r.rule) for r in table}
    out.append(f"{len(episodes)} episode(s); {alert_rules - len(fired)} of {alert_rules} alert "
               "rules never fired in this range")
    return "\n".join(out)


def document(episodes: Sequence[Episode], window: Window, alert_rules: int) -> dict:
    """The `--json` document: episodes with Unix-second times, and the per-instance summary."""
    return {
        "from": window.start / 1000, "to": window.end / 1000, "step": window.step / 1000,
        "alert_rules": alert_rules,
        "episodes": [{"alert": e.rule.name, "service": e.rule.service,
                      "severity": e.rule.severity, "labels": dict(e.labels),
                      "start": e.start / 1000, "end": e.end / 1000, "open": e.open}
                     for e in sorted(episodes, key=lambda e: (e.start, e.rule.name, e.labels))],
        "summary": [{"alert": r.rule.name, "service": r.rule.service,
                     "severity": r.rule.severity, "labels": dict(r.labels),
                     "episodes": r.episodes, "firing_seconds": r.firing_ms / 1000,
                     "longest_seconds": r.longest_ms / 1000,
                     "first_start": r.first_start / 1000, "last_start": r.last_start / 1000,
                     "verdict": r.verdict} for r in rows(episodes, window)],
    }
