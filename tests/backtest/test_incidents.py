"""`watchkeeper backtest` against a real Prometheus holding history with known incidents."""

from __future__ import annotations

import json

from backtest import history
from backtest.conftest import SPEC
from watchkeeper.cli import main

STEP, FOR, KEEP = 60, 5 * 60, 5 * 60


def backtest(capsys, url: str, start: int, *extra: str) -> dict:
    code = main(["backtest", str(SPEC), "--prometheus", url, "--from", str(start + 600),
                 "--to", str(start + 359 * 60), "--json", *extra])
    out = capsys.readouterr()
    assert code == 0, out.err
    return json.loads(out.out)


def episodes_of(document: dict, alert: str, severity: str) -> list[dict]:
    return [e for e in document["episodes"]
            if e["alert"] == alert and e["severity"] == severity]


def test_episodes_match_the_incidents(capsys, prometheus, start):
    document = backtest(capsys, prometheus, start)
    for incident in history.INCIDENTS:
        found = episodes_of(document, incident.alert, incident.severity)
        assert len(found) == 1, (incident, found)
        episode = found[0]
        assert incident.labels.items() <= episode["labels"].items()
        began, ended = start + incident.start * 60, start + incident.end * 60
        hold = FOR if incident.alert != "TargetDown" else 5 * 60
        keep = KEEP if incident.alert != "TargetDown" else 0
        # Fires once the fault has lasted `for`, within one evaluation step ...
        assert began + hold <= episode["start"] <= began + hold + STEP, (incident, episode)
        # ... and resolves once the signal (lagging by its rate window) is back under budget
        # and keep_firing_for has passed.
        assert ended + keep <= episode["end"] <= ended + incident.lag * 60 + keep + STEP, \
            (incident, episode)
        assert not episode["open"]


def test_budgets_never_crossed_report_nothing(capsys, prometheus, start):
    document = backtest(capsys, prometheus, start)
    for alert, severity in history.QUIET:
        assert episodes_of(document, alert, severity) == [], (alert, severity)
    assert len(document["episodes"]) == len(history.INCIDENTS)
