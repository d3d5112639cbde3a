"""`fitted` ends for every valid SLO spec, with every burn lasting a MARGIN past its last
change of state, and lengthens a burn no further than the bound its docstring gives.

It used to give up after 20 rounds, silently: the burn then ended near a change, so its
last check expected a state the evaluation could already have left (or was dropped), and
the scenario could end without a single check proving its alerts fire.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from watchkeeper.signals import slo as slo_signal
from watchkeeper.slo_spec import TIER_NAMES, TIERS, SloSpec

MARGIN = slo_signal.MARGIN
STEP = slo_signal.STEP_MINUTES
DAY = 86400


def resolved(document: dict):
    return SloSpec.model_validate(document).resolve()


def test_twenty_two_pages_firing_30_minutes_apart_are_all_checked_firing():
    """22 availability SLOs at 99.9% with only page-1h, `for` 20m, 50m, ... 11h50m. The 20x
    burn starts at 1h: the 1h window's mean 20 (t - 60) / 60 exceeds 14.4 from minute 104
    (the 5m window long before), so SLO i fires at 124 + 30 i, the last at 754. Every
    round of the fit reaches one more firing (a change a MARGIN past the end is out of
    sight; 30 minutes apart, never two at once): 22 rounds, past the old cap of 20. The
    burn must end at the first step (15m) a MARGIN (35m) past 754, 789 -> 795, with all
    22 firing."""
    off = {name: False for name in TIER_NAMES if name != "page-1h"}
    slos = [resolved({"name": f"a{i}", "objective": "99.9%", "indicator": "availability",
                      "alerting": {"tiers": {**off, "page-1h": {"for": f"{20 + 30 * i}m"}}}})
            for i in range(22)]
    raw = next(p for p in slo_signal.profiles(slos, 10) if p.name == "20x burn pages")
    assert raw.segments == ((60, 0.0), (80, 20.0))
    profile, states = slo_signal.fitted(raw, slos, 10)
    assert profile.segments == ((60, 0.0), (735, 20.0))
    firing = sorted(next(t for t, on in enumerate(s) if on) for s in states.values())
    assert firing == [124 + 30 * i for i in range(22)]
    last = slo_signal.check_times(states, 795)[-1]
    assert last == 795 and all(s[last] for s in states.values())


# --- Every valid spec ------------------------------------------------------------------------

SCALES = (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60)


@st.composite
def slo_sets(draw) -> list:
    """One to three SLOs of one service (one `time_scale`), each valid: a window of 4 to
    400 days (or shorter, its longer tiers then off), an objective of 90 to 99.999%, every
    tier on or off, with its default `for` or one of 0 to 3 days."""
    scale = draw(st.sampled_from(SCALES))
    slos = []
    for i in range(draw(st.integers(1, 3))):
        window = draw(st.one_of(st.integers(4 * DAY, 400 * DAY), st.integers(2 * 3600, 4 * DAY)))
        objective = draw(st.integers(90000, 99999)) / 100000
        tiers = {}
        for tier in (t.scaled(scale) for t in TIERS):
            on = (draw(st.booleans()) and tier.long < window
                  and tier.factor(window) * (1 - objective) < 1)
            tiers[tier.name] = (
                {"for": f"{draw(st.integers(0, 3 * 24 * 60))}m"} if draw(st.booleans())
                else {}) if on else False
        if all(policy is False for policy in tiers.values()):
            continue
        indicator = draw(st.sampled_from(["availability", {"latency": "500ms"},
                                          {"latency": "250ms"}]))
        try:
            slos.append(resolved({
                "name": f"s{i}", "objective": objective, "window": f"{window}s",
                "indicator": indicator, "time_scale": scale, "alerting": {"tiers": tiers}}))
        except ValidationError as error:  # the strategy should only draw valid SLOs
            raise AssertionError(error) from None
    return [slo.reference() for slo in slos if slo.tiers()]


def settle_bound(profile: slo_signal.Profile, slos: list) -> int:
    """The last minute a state may change: the last segment's start, then its burn is all
    that the longest window of a tier reads, and that tier's `for` has passed."""
    start = sum(length for length, _ in profile.segments[:-1])
    return start + max((round(tier.long / 60) + round(for_ / 60)
                        for slo in slos for tier, for_ in slo.tiers()), default=0)


@settings(max_examples=30)
@given(slos=slo_sets(), floor=st.integers(1, 1000))
def test_every_valid_spec_fits_each_burn_a_margin_past_its_last_change(slos, floor):
    for raw in slo_signal.profiles(slos, floor) if slos else []:
        profile, states = slo_signal.fitted(raw, slos, floor)
        *head, (last, burn) = profile.segments
        assert (*head, burn) == (*raw.segments[:-1], raw.segments[-1][1])
        length = len(slo_signal.minutes(profile))
        raw_length = len(slo_signal.minutes(raw))
        on_step = -(-raw_length // STEP) * STEP  # the end moves to an evaluation
        assert raw_length <= length <= max(on_step, settle_bound(raw, slos) + MARGIN + STEP)
        assert length % STEP == 0
        longer = slo_signal.Profile(profile.name, (*head, (last + 2 * MARGIN, burn)),
                                    profile.traffic)
        for slo in slos:
            for key, s in slo_signal.model(slo, slos, longer, floor).items():
                assert s[:length + 1] == states[key], (raw.name, key)
                assert len(set(s[length - MARGIN:length + MARGIN + 1])) == 1, (raw.name, key)
