"""The rule manager's state machine on hand-written timelines (ticks of one minute).

Expectations follow Prometheus' rules/alerting.go: pending at the first active tick, firing at
the first tick with now - ActiveAt >= for; a pending alert that disappears is forgotten; a
firing one is kept while now - KeepFiringSince < keep_firing_for, KeepFiringSince being reset
when it comes back; resolved (episode end) at the first tick it is neither.
"""

from __future__ import annotations

import pytest
from watchkeeper.backtest.engine import Replay

MINUTE = 60_000
A = (("instance", "a"),)


def episodes(active_ticks: set[int], for_ticks: int, keep_ticks: int, ticks: int = 30):
    machine = Replay(for_ticks * MINUTE, keep_ticks * MINUTE)
    for tick in range(ticks):
        machine.tick(tick * MINUTE, [A] if tick in active_ticks else [])
    closed = [(begin // MINUTE, end // MINUTE) for _, begin, end in machine.closed]
    still = [begin // MINUTE for _, begin in machine.firing()]
    return closed, still


@pytest.mark.parametrize(("active", "for_", "keep", "closed", "still"), [
    # active 0..4, for 2m, keep 3m: fires at 2, kept at 5, 6, 7, resolved at 8
    (set(range(5)), 2, 3, [(2, 8)], []),
    # back at 7 while kept: KeepFiringSince resets, gone from 8: kept 8, 9, 10, resolved at 11
    ({0, 1, 2, 3, 4, 7}, 2, 3, [(2, 11)], []),
    # for 0: fires at its first tick; without keep_firing_for resolved at the next
    ({3}, 0, 0, [(3, 4)], []),
    # pending for 2 ticks, gone, back: ActiveAt starts over, fires at 3 + 2
    ({0, 1, 3, 4, 5, 6}, 2, 0, [(5, 7)], []),
    # never active long enough
    ({0, 1, 3, 4, 6, 7}, 2, 5, [], []),
    # still firing at the end of the range
    (set(range(20, 30)), 5, 5, [], [25]),
])
def test_state_machine(active, for_, keep, closed, still):
    assert episodes(active, for_, keep) == (closed, still)


def test_instances_are_independent():
    machine = Replay(MINUTE, 0)
    b = (("instance", "b"),)
    for tick, present in enumerate([[A], [A, b], [b], [b], []]):
        machine.tick(tick * MINUTE, present)
    assert sorted((k, s // MINUTE, e // MINUTE) for k, s, e in machine.closed) == \
        [(A, 1, 2), (b, 2, 4)]


@pytest.mark.parametrize(("durations_min", "days", "expected"), [
    ([3, 4, 2, 5, 3], 1, "flapping: 5 episodes, median 3m"),
    ([40, 50, 60], 1, "noisy: 3.0 episodes a day"),
    ([40, 50], 1, ""),
    ([700, 100], 1, "firing 56% of the range: budget below normal"),
    ([30] * 6, 7, ""),
])
def test_verdicts(durations_min, days, expected):
    from watchkeeper.backtest.engine import Window
    from watchkeeper.backtest.report import verdict

    window = Window(0, days * 1440 * MINUTE, MINUTE)
    assert verdict([d * MINUTE for d in durations_min], window) == expected
