"""`fitted` ends for every valid SLO spec, with every burn lasting a MARGIN past its last
change of state, and lengthens a burn no further than the bound its docstring gives.

It used to give up after 20 rounds, silently: the burn then ended near a change, so its
last check expected a state the evaluation could already have left (or was dropped), and
the scenario could end without a single check proving its alerts fire.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from test_slo import needs_promtool
from test_slo_sweep import check_generated_slo_tests
from watchkeeper.signals import slo as slo_signal
from watchkeeper.slo_spec import THRESHOLD_CLEARANCE, TIER_NAMES, TIERS, SloSpec

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


# --- Burns on a factor ----------------------------------------------------------------------


def test_a_tier_needing_an_error_ratio_of_one_is_refused():
    """The flake hypothesis drew: a 500h window at 90% with only page-1h. Its factor is 10,
    and 10 × (1 - 0.9) is 0.9999999999999998, so the spec was accepted; the 20x burn (all
    events bad, capped at 1 / budget = 10.000000000000002) then sat on the factor and the
    model flapped with float noise ("changed state after its last burn settled"), while
    promtool reads (10 * 0.1) = 1, which no error ratio exceeds: the tier can never fire."""
    off = {name: False for name in TIER_NAMES if name != "page-1h"}
    with pytest.raises(ValidationError, match=re.escape(
            "page-1h would need an error ratio above 10 × 0.1 = 1, which can never happen")):
        resolved({"name": "a", "objective": 0.9, "window": "500h",
                  "indicator": "availability", "alerting": {"tiers": off}})


def test_burns_on_a_factor_are_raised_off_it():
    """40d: page-6h's factor is 0.05 × 40d / 6h = 8 and ticket-1d's 0.1 × 40 = 4, exactly
    the 8x and 4x burns: on a factor, whether a mean exceeds it is float noise. Each moves
    up by 1% and crosses it clearly; the others (20, 1000, 15, 2, 0.5 against 19.2, 8, 4,
    4/3) stay as they are."""
    burns = {p.name: [b for _, b in p.segments] for p in slo_signal.profiles(FORTY_DAYS, 10)}
    assert burns["8x burn pages on the 6h window after 4.5h, never on the 1h one"] == [
        0.0, pytest.approx(8.08, rel=1e-12)]
    assert burns["4x burn opens tickets, never pages"] == [0.0, pytest.approx(4.04, rel=1e-12)]
    assert burns["20x burn pages"] == [0.0, 20.0]
    assert burns["2x burn opens a ticket on the 3d window only"] == [0.0, 2.0]
    assert burns[f"{STEP}m blip at 15x stays quiet"] == [0.0, 15.0, 0.0]


@pytest.mark.slow
@needs_promtool
def test_forty_day_window_tests_pass_under_promtool(tmp_path):
    """The 40d SLOs (99.9% and the 99% latency one) with their burns raised off the factors:
    the generated tests pass under promtool, every tier checked firing and quiet."""
    check_generated_slo_tests(tmp_path, "40d", "99.9%", "default")


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
                  and tier.factor(window) * (1 - objective) < 1 - THRESHOLD_CLEARANCE)
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


FORTY_DAYS = [resolved({"name": "a", "objective": "99.9%", "window": "40d",
                        "indicator": "availability"}).reference()]


@settings(max_examples=30)
@given(slos=slo_sets(), floor=st.integers(1, 1000))
@example(slos=FORTY_DAYS, floor=10)  # burns 8 and 4 on page-6h's and ticket-1d's factors
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
