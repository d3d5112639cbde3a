"""SLOs: multiwindow multi-burn-rate alerts on an error budget, and the scenarios proving them.

Cost and correctness of long windows: bad and total events are read from raw series once, at
a 5m rate; every longer window is the ratio of their averages over it,
``avg_over_time(bad[w]) / avg_over_time(total[w])`` (never an average of ratios, which
weighs a quiet night like a busy day). A 30d window then reads one recorded series instead
of every raw series of the service.

The SLO's own window (30d; read by dashboards, never by an alert) would still read 43,200
samples of each 5m rate per evaluation, most of the SLO rules' cost. From 7 days on it reads
hourly means instead: ``slo:bad_events:rate1h`` = ``avg_over_time(slo:bad_events:rate5m[1h])``
(and ``slo:events:rate1h``), recorded every 5m by a group of their own (`HOURLY_GROUP`), 8,640
samples per 30 days. The mean of those means weighs every minute of the window alike except
at its two ends (see `hourly_recordings`); the recordings users read keep their names.

Every ratio divides by ``clamp_min(total, 1e-12)``: with no traffic the error ratio is 0,
not NaN, so budget recordings stay plottable and nothing fires on an idle service. An
errors query returning nothing counts as zero errors (a service that never failed has no
5xx series); a latency SLO's good events must exist, or its data-missing alert fires.

Low traffic: a tier fires only when its long window holds enough events that one bad event
alone cannot trip it (see :func:`watchkeeper.slo_spec.min_events`).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, replace
from typing import Any

from watchkeeper import promql
from watchkeeper.model import (
    Alert,
    AlertCheck,
    Chart,
    ExpectedAlert,
    ExprCheck,
    Piece,
    Query,
    Recording,
    Row,
    Scenario,
    Series,
    Service,
    Slo,
    SloErrorRatio,
    SloEvents,
    SloLatency,
    Thresholds,
)
from watchkeeper.signals import common
from watchkeeper.signals.base import Key, Signal
from watchkeeper.slo_spec import (
    RAW_WINDOW,
    THRESHOLD_CLEARANCE,
    TINY_RATE,
    SloSpec,
    Tier,
    latency_problem,
    le_spellings,
    min_events,
)
from watchkeeper.units import format_number, prometheus_duration

GROUP = "slo"
# Recordings no alert reads (budget, burn rate, time to exhaustion, the full-window ratio:
# dashboards only) are a rule group and file of their own, `<service>.slo-report.rules.yml`:
# the alerts' promtool tests, hundreds of steps, then skip them at every step, and a short
# test of their own proves their values.
REPORT_GROUP = "slo-report"
# Hourly means of the 5m rates, read only through the SLO window's range (never instantly),
# so a group evaluated every HOURLY_INTERVAL loses nothing; see `hourly_recordings`.
HOURLY_GROUP = "slo-hourly"
HOURLY_INTERVAL = 300.0  # divided by the SLO's time_scale, as every window
HOURLY_FROM = 7 * 86400.0  # SLO windows (at time_scale 1) from which the ratio reads them
ERROR_CODES = "5.."
ABSENT_ALERT = "SloDataMissing"
ROW = Row("slos", "SLOs (error budgets)", 500)
# Every SLO's remaining error budget (labels service, slo); read by the fleet overview too.
REMAINING_RECORD = "slo:error_budget_remaining:ratio"
REMAINING_BUDGET = Thresholds(0.25, 0.0, 0.0, lower_is_worse=True)  # 25% left, exhausted
KEYS = (
    Key(None, "slos", list[SloSpec],
        "Service level objectives: error budgets with multiwindow multi-burn-rate alerts "
        "(docs/slo.md).", default=[]),
    Key("http", "buckets", list[float] | None,
        "Bucket upper bounds (seconds) of the request histogram, as the client library "
        "declares them; lets a latency SLO's threshold be checked against them."),
)


def slos_of(service: Service) -> tuple[Slo, ...]:
    return service.budget("slos") or ()


# --- Names -----------------------------------------------------------------------------------


def bad_record(window: float) -> str:
    return f"slo:bad_events:rate{span(window)}"


def total_record(window: float) -> str:
    return f"slo:events:rate{span(window)}"


def ratio_record(window: float) -> str:
    return f"slo:sli_error:ratio_rate{span(window)}"


def slo_labels(service: Service, slo: Slo) -> dict[str, str]:
    """The labels every recording of one SLO carries (and selects on)."""
    return {"service": service.name, "slo": slo.name}


def selector(record: str, service: Service, slo: Slo) -> str:
    return record + promql.matchers(slo_labels(service, slo))


def number(value: float) -> str:
    """A threshold as PromQL text without float noise (1 - 0.999 is 0.0010000000000000009)."""
    return format_number(float(f"{value:.12g}"))


# --- Indicator queries -----------------------------------------------------------------------


def queries(service: Service, slo: Slo, window: str) -> tuple[str, str]:
    """(bad events per second, all events per second) over `window`, from raw series."""
    indicator = slo.indicator
    if isinstance(indicator, SloErrorRatio):
        return f"({_at(indicator.error_ratio, window).strip()})", "vector(1)"
    if isinstance(indicator, SloEvents):
        bad, total = (_at(q, window) for q in (indicator.errors, indicator.total))
        return f"({bad.strip()}) or on() vector(0)", total.strip()
    histogram = service.setting("http", "histogram")  # the spec refuses these without http
    count = f"{histogram}_count"
    total = f"sum(rate({count}{promql.matchers(service.selector)}[{window}]))"
    if indicator == "availability":
        status = service.setting("http", "status_label")
        errors = promql.matchers(service.selector, **{status: "=~" + ERROR_CODES})
        return f"sum(rate({count}{errors}[{window}])) or on() vector(0)", total
    assert isinstance(indicator, SloLatency)
    le = "|".join(s.replace(".", "\\.") for s in le_spellings(indicator.latency))
    good = promql.matchers(service.selector, le="=~" + le)
    good_expr = f"sum(rate({histogram}_bucket{good}[{window}]))"
    return f"clamp_min({total} - {good_expr}, 0)", total


def _at(query: str, window: str) -> str:
    return re.sub(r"\{\{\s*window\s*\}\}", window, query)


# --- Rules -----------------------------------------------------------------------------------


def alert_windows(slo: Slo) -> set[float]:
    """The windows some enabled tier of `slo` reads (their ratios are in the SLO group)."""
    return {w for tier, _ in slo.tiers() for w in (tier.long, tier.short)}


def recordings(service: Service,
               slo: Slo) -> tuple[list[Recording], list[Recording], list[Recording]]:
    """The SLO group's recordings (the 5m bad and total rates and the ratio of every window
    an alert reads), the hourly group's (`hourly_recordings`) and the report's (the ratios
    of windows no alert reads: the SLO's own window, for the dashboards' compliance and the
    remaining budget; then `meta_recordings`)."""
    read = alert_windows(slo) | {slo.raw_window}
    unread = {ratio_record(w) for w in slo.windows() if w not in read}
    alerting: list[Recording] = []
    report: list[Recording] = []
    for recording in window_recordings(service, slo):
        (report if recording.record in unread else alerting).append(recording)
    return alerting, hourly_recordings(service, slo), report + meta_recordings(service, slo)


def uses_hourly(slo: Slo) -> bool:
    """Does the SLO window's ratio read the hourly means? From HOURLY_FROM on (at time_scale
    1): shorter windows cost little read whole, and the means' ends would weigh more."""
    return slo.window * slo.time_scale >= HOURLY_FROM


def hourly_recordings(service: Service, slo: Slo) -> list[Recording]:
    """The hour's (`hour`) mean of the 5m bad and total rates, for the SLO window's ratio;
    none when it does not use them (`uses_hourly`).

    Recorded every HOURLY_INTERVAL, the means of 12 overlapping hours cover each minute, so
    the window's mean of them weighs every minute alike but the last hour's (a minute `a`
    ago counts a/1h: recent events enter the ratio over an hour) and the hour before the
    window (which counts as much as the last hour misses). A 5m mean every 5m would tile the
    minutes instead, but counts a minute twice or never whenever the two groups'
    evaluations fall on the same instant (ranges are closed) and loses every minute of an
    evaluation missed; here a missed one only removes one of 12 overlapping means.
    """
    if not uses_hourly(slo):
        return []
    labels = slo_labels(service, slo)
    raw, window = slo.raw_window, span(hour(slo))
    return [Recording(record(hour(slo)),
                      f"avg_over_time({selector(record(raw), service, slo)}[{window}])", labels)
            for record in (bad_record, total_record)]


def window_recordings(service: Service, slo: Slo) -> list[Recording]:
    """The 5m bad and total rates and the ratio of every window of `slo`."""
    labels = slo_labels(service, slo)
    raw_window = slo.raw_window
    bad, total = queries(service, slo, prometheus_duration(raw_window))
    bad_raw = selector(bad_record(raw_window), service, slo)
    total_raw = selector(total_record(raw_window), service, slo)
    out = [Recording(bad_record(raw_window), bad, labels),
           Recording(total_record(raw_window), total, labels)]
    bad_hourly = selector(bad_record(hour(slo)), service, slo)
    total_hourly = selector(total_record(hour(slo)), service, slo)
    for w in slo.windows():
        if w == raw_window:
            ratio = f"{bad_raw} / clamp_min({total_raw}, {TINY_RATE!r})"
        else:
            d = span(w)
            bad, total = ((bad_hourly, total_hourly) if w == slo.window and uses_hourly(slo)
                          else (bad_raw, total_raw))
            ratio = (f"avg_over_time({bad}[{d}])\n/\n"
                     f"clamp_min(avg_over_time({total}[{d}]), {TINY_RATE!r})")
        out.append(Recording(ratio_record(w), ratio, labels))
    return out


def meta_recordings(service: Service, slo: Slo) -> list[Recording]:
    """Objective, budget, remaining budget, burn rate and time to exhaustion, for dashboards
    and other tools; all NaN-free since the ratios they read are.

    Time to exhaustion is capped at the window: a budget that outlasts the window at the
    current pace is never exhausted within it.
    """
    labels = slo_labels(service, slo)
    budget = number(slo.budget)
    window = format_number(slo.window)
    remaining = selector(REMAINING_RECORD, service, slo)
    burn = selector("slo:current_burn_rate:ratio", service, slo)
    return [
        Recording("slo:objective:ratio", f"vector({number(slo.objective)})", labels),
        Recording("slo:error_budget:ratio", f"vector({budget})", labels),
        Recording(REMAINING_RECORD,
                  f"1 - {selector(ratio_record(slo.window), service, slo)} / {budget}", labels),
        Recording("slo:current_burn_rate:ratio",
                  f"{selector(ratio_record(hour(slo)), service, slo)} / {budget}", labels),
        Recording("slo:time_to_exhaustion:seconds",
                  f"clamp_max(clamp_min({remaining}, 0) * {window} / "
                  f"clamp_min({burn}, {TINY_RATE!r}), {window})", labels),
    ]


def hour(slo: Slo) -> float:
    """The page-1h tier's long window (1h, divided by the SLO's `time_scale`): the window of
    the current burn rate and of the dashboards' short-term lines."""
    return 3600.0 / slo.time_scale


def tier_expr(service: Service, slo: Slo, tier: Tier, floor: int) -> str:
    threshold = f"({number(tier.factor(slo.window))} * {number(slo.budget)})"
    events = format_number(min_events(slo, tier, floor))
    total = selector(total_record(slo.raw_window), service, slo)
    return (f"{selector(ratio_record(tier.long), service, slo)} > {threshold}\n"
            f"and {selector(ratio_record(tier.short), service, slo)} > {threshold}\n"
            f"and avg_over_time({total}[{span(tier.long)}]) * "
            f"{format_number(tier.long)} >= {events}")


def alert_labels(service: Service, slo: Slo, severity: str, **extra: str) -> dict[str, str]:
    labels = {"service": service.name, "slo": slo.name, "signal": slo.signal,
              "severity": severity, **extra, **service.labels, **slo.labels}
    if slo.alerting is not None:
        labels.update(slo.alerting.labels)
        if "burn_tier" in extra:
            labels.update((slo.alerting.page if severity == "critical"
                           else slo.alerting.ticket).labels)
    return labels


def span(seconds: float) -> str:
    """A window as people write it: ``30d`` rather than Prometheus' ``4w2d``."""
    if seconds % 86400 == 0:
        return f"{int(seconds // 86400)}d"
    return prometheus_duration(seconds)


def tier_annotations(service: Service, slo: Slo, tier: Tier) -> dict[str, str]:
    factor = tier.factor(slo.window)
    long, short = span(tier.long), span(tier.short)
    out = {
        "summary": f"{service.name} SLO {slo.name} is burning its error budget {factor:g}× "
                   "too fast",
        "description": (
            f"Over both the last {long} and the last {short}, bad events used the "
            f"{span(slo.window)} error budget ({number(slo.budget * 100)}% of events) more "
            f"than {factor:g}× as fast as it allows; at that pace it is gone within "
            f"{span(round(slo.window / factor))}."),
    }
    if slo.description:
        out["slo_description"] = slo.description
    if slo.alerting is not None:
        out.update(slo.alerting.annotations)
        out.update((slo.alerting.page if tier.severity == "critical"
                    else slo.alerting.ticket).annotations)
    return out


def alert_name(slo: Slo) -> str:
    return "SloErrorBudgetBurn" if slo.alerting is None else slo.alerting.name


def alerts(service: Service, slo: Slo) -> list[Alert]:
    tiers = slo.tiers()
    if not tiers:
        return []
    out = [Alert(alert_name(slo), tier_expr(service, slo, tier, common.min_events(service)), for_,
                 alert_labels(service, slo, tier.severity, burn_tier=tier.name),
                 tier_annotations(service, slo, tier))
           for tier, for_ in tiers]
    out.append(absent_alert(service, slo, tiers))
    return out


def absent_wait(tiers: list[tuple[Tier, float]]) -> float:
    """`for` of the data-missing alert: the fastest enabled tier's long window. A restart
    leaves the 5m rate intact, and until that window refills its tier is blind anyway."""
    return min(tier.long for tier, _ in tiers)


def absent_alert(service: Service, slo: Slo, tiers: list[tuple[Tier, float]]) -> Alert:
    wait = absent_wait(tiers)
    expr = (f"absent({selector(total_record(slo.raw_window), service, slo)})\n"
            f"or absent({selector(bad_record(slo.raw_window), service, slo)})")
    return Alert(ABSENT_ALERT, expr, wait, alert_labels(service, slo, "warning"), {
        "summary": f"{service.name} SLO {slo.name} has no data",
        "description": (f"The events SLO {slo.name} is computed from have been missing for "
                        f"{prometheus_duration(wait)}; its burn-rate alerts cannot fire."),
    })


# --- Scenarios -------------------------------------------------------------------------------
# Each scenario is a burn profile (segments of minutes at some burn rate) over steady
# traffic, applied to every availability and latency SLO of the service at once. What must
# fire when comes from a continuous model of the window table, not from the rules: a tier's
# condition holds when the mean burn over both its windows exceeds its factor, and it fires
# once that has held for its `for`. Checks sit only where the model is unambiguous for a
# margin either side, so the discrete evaluation (the 5m rate's ramp, the steps) cannot
# make them flaky, while a wrong factor or window moves a transition far past the margin.
#
# promtool evaluates every rule at every step, so the SLO rules get their own rule and test
# files evaluated every TEST_INTERVAL: the scenarios span hours, not the minutes the other
# signals' tests need. At 15m every tier's windows still hold several evaluations (the
# shortest long window, 1h: five), and the example's SLO file takes 136 steps (181 at 10m,
# 1/4 less promtool CPU). The 5m short window is read at each step all the same (its rate
# is recorded at each step), so it sees only the last 5 minutes of each step: a burst
# shorter than a step lasts one step and ends on an evaluation, and the long windows' means
# over the steps' 5m rates lag the minute-by-minute model by up to a step's weight
# (`fitted` then waits for the evaluation every step, `discrete_firing`, as well).

TEST_INTERVAL = 900.0
# The report's test keeps 10m: its checks are numbers worked out per step (`report_ratio`)
# over 70 minutes, 7 steps; a 15m step would cost as much and change them.
REPORT_INTERVAL = 600.0
STEP_MINUTES = round(TEST_INTERVAL / 60)
BLIP = 225.0  # budget-minutes of the short blip (15m at 15x)
SAMPLE = 60.0  # seconds between input samples
TRAFFIC = 1000.0  # events per minute
# Minutes either side of a model transition left unchecked: the discrete evaluation sees a
# condition up to one step late and fires up to one step after its `for` (a `for` that is
# no multiple of the step waits for the next one), and the 5m rate ramps over its window.
MARGIN = 2 * round(TEST_INTERVAL / 60) + round(RAW_WINDOW / 60)
SPACING = 30  # minutes between two checks that expect the same alerts
# Minutes a check between two transitions closer than two margins keeps from each (see
# `between_checks`): the step a condition may be seen late, and the 5m rate's ramp.
CLEARANCE = round(TEST_INTERVAL / 60) + round(RAW_WINDOW / 60)


@dataclass(frozen=True)
class Profile:
    name: str
    segments: tuple[tuple[int, float], ...]  # (minutes, burn as a multiple of the budget)
    traffic: float = TRAFFIC
    vanish_after: int | None = None  # minutes after which every input series stops


FIRST = Profile("1000x burn pages within minutes", ((60, 0.0), (80, 1000.0)))


def profiles(slos: list[Slo], floor: int) -> list[Profile]:
    """The burns of the issue's table: 1000×, 20×, 8×, 4×, 2×, 0.5×, a short blip, recovery,
    no traffic, too little traffic, and vanished series.

    Histories before a burn are as short as each case allows (promtool evaluates every rule
    at every step): 1h where the page-1h window must be full; 2h for the 8x case, whose
    page-6h window is then full from 4h of burning on, before its condition holds at the
    table's 6h × 6 / 8 = 4.5h (so that is its detection time; a 6h history only added
    24 steps of 42 rules), while its 1d window (not full) passes ticket-1d's 3x after
    1.2h, leaving hours of "ticket-1d firing, page-6h not yet" to check; 4.5h
    for the blip (its 225 budget-minutes then average 0.8 over the history, below the
    lowest factor, 1, so staying quiet still proves every factor above that). The blip
    lasts one evaluation step and ends on an evaluation: what one step's 5m rate sees is
    then what the whole step held (at a 15m step, a shorter blip could fall between two
    5m rates), so at 15m it is 15x, still above the page-1h factor 14.4 over the 5m
    window (quiet only because its 1h window stays below); the recovery's 1000x burst
    lasts one step for the same reason. Each burn
    lasts until MARGIN past the model's last transition, to the next step, no longer
    (every state the model reaches is then checked). The ticket tiers' 1d
    and 3d windows are never full (days of steps); their factors are checked.
    """
    return [_clear_of_factors(profile, slos) for profile in (
        FIRST,
        Profile("20x burn pages", ((60, 0.0), (80, 20.0))),
        Profile("8x burn pages on the 6h window after 4.5h, never on the 1h one",
                ((120, 0.0), (310, 8.0))),
        Profile("4x burn opens tickets, never pages", ((30, 0.0), (150, 4.0))),
        Profile("2x burn opens a ticket on the 3d window only", ((30, 0.0), (80, 2.0))),
        Profile("0.5x burn stays quiet", ((30, 0.0), (60, 0.5))),
        Profile(f"{STEP_MINUTES}m blip at {BLIP / STEP_MINUTES:g}x stays quiet",
                ((270, 0.0), (STEP_MINUTES, BLIP / STEP_MINUTES), (60, 0.0))),
        Profile("page resets after recovery", ((60, 0.0), (STEP_MINUTES, 1000.0), (60, 0.0))),
        Profile("no traffic stays quiet", ((90, 0.0),), traffic=0.0),
        Profile("too little traffic stays quiet", ((60, 0.0), (90, 1000.0)),
                traffic=min_traffic(slos, floor)),
    )]


def _clear_of_factors(profile: Profile, slos: list[Slo]) -> Profile:
    """`profile` with every burn that sits on a tier's factor (within THRESHOLD_CLEARANCE)
    raised by 1% until it is clear of every factor.

    On a factor, whether a window's mean exceeds it is float noise, in the model and in
    promtool alike (40d: page-6h's factor is 8, the 8x burn's; 500h at 90%: page-1h's
    10 is 1 / budget, what a burn of all bad events reads): the model flapped and its
    checks would be a coin toss. Raised, the burn crosses the factor clearly and the
    scenario does what its name says (8x pages). A burn capped at all events bad can
    rise no further; the spec keeps every factor clear of that (`SloSpec`)."""
    def near(burn: float) -> bool:
        shares = bad_shares(slos, burn)
        return any(abs(shares[indicator_key(slo)] / slo.budget - tier.factor(slo.window))
                   <= THRESHOLD_CLEARANCE * tier.factor(slo.window)
                   for slo in slos for tier, _ in slo.tiers())

    def clear(burn: float) -> float:
        while burn > 0 and near(burn) and min(bad_shares(slos, burn).values()) < 1.0:
            burn *= 1.01
        return burn
    return replace(profile, segments=tuple((length, clear(burn))
                                           for length, burn in profile.segments))


def fitted(profile: Profile, slos: list[Slo],
           floor: int) -> tuple[Profile, dict[str, list[bool]]]:
    """`profile` with its last segment lengthened until no tier of `slos` changes state
    within MARGIN of its end, so that its last check expects the state every tier ends in;
    and the model's states over it (per tier, per minute: firing?).

    The segments of `profiles` suit the 30d table with the default `for`s; other windows
    scale the factors and a tier's own `for` moves its firing, which may then fall just
    after the end (30d, 99%, ticket-1d `for: 1h`: 4x holds from 2h and fires at 3h1m, the
    end; the evaluation every 10m fires it at 3h) where no check could tell its state.
    The model is causal (a minute's state reads only the minutes before it), so the states
    of the lengthened run cut at the end are those of the profile. The end sits on an
    evaluation (its check is the last), and where the model has a tier firing there that
    the evaluation every step has yet to fire (`_fires_late`), it moves on by a step.

    Always ends, for any spec (no cap on rounds: a cap of 20 once left a valid spec with
    22 SLOs whose pages fire 30m apart expecting 21 firing at its end): a round that
    does not end moves the end past a change later than MARGIN before it, so the end
    grows; and the last segment's burn is constant, so once both windows of every tier lie
    inside it and its longest `for` has passed (`settled`), no state changes any more.
    """
    *head, _ = profile.segments
    settled = sum(length for length, _ in head) + _longest_wait(slos)
    end = len(minutes(profile))  # on an evaluation: the last check sits at the very end
    profile = _lengthened(profile, _tick_at(end, STEP_MINUTES) - end)
    while True:
        length = len(minutes(profile))
        ahead = {key: states for slo in slos
                 for key, states in model(slo, slos, _lengthened(profile, 2 * MARGIN),
                                          floor).items()}
        near = [t for states in ahead.values()
                for t in range(max(1, length - MARGIN + 1), length + MARGIN + 1)
                if states[t] != states[t - 1]]
        if not near and not _fires_late(slos, profile, floor, ahead, length):
            return profile, {key: states[:length + 1] for key, states in ahead.items()}
        if not near:  # the evaluation every step has yet to fire what the model fires:
            # on to the next step (the end on an evaluation, checked)
            profile = _lengthened(profile, _tick_at(length + 1, STEP_MINUTES) - length)
            continue
        assert max(near) <= settled, "the model changed state after its last burn settled"
        profile = _lengthened(profile, _tick_at(max(near) + MARGIN, STEP_MINUTES) - length)


def _fires_late(slos: list[Slo], profile: Profile, floor: int,
                states: dict[str, list[bool]], length: int) -> bool:
    """Does a tier the model has firing at the end of `profile` not fire yet in the
    evaluation every step (`discrete_firing`)? The windows' means over the steps' 5m rates
    lag the model's means over every minute by up to a step's weight (the 5m rate sees the
    last 5 minutes of each step, availability's first step counts a 0), more so over the
    long windows near their factor (4x against ticket-1d's 3x): the end, checked, waits."""
    discrete = discrete_firing(slos, profile, floor, length)
    return any(states[key][length] and not discrete[key] for key in discrete)


def _longest_wait(slos: list[Slo]) -> int:
    """Minutes from a constant burn's start until no tier of `slos` can change state: the
    longest long window (then both windows read only that burn) plus the longest `for`."""
    return max((round(tier.long / 60) + round(for_ / 60) for slo in slos
                for tier, for_ in slo.tiers()), default=0)


def _lengthened(profile: Profile, extra: int) -> Profile:
    """`profile` with its last segment `extra` minutes longer."""
    *head, (length, burn) = profile.segments
    return replace(profile, segments=(*head, (length + extra, burn)))


def min_traffic(slos: list[Slo], floor: int) -> float:
    """Events per minute too few for any tier: half of every tier's minimum over its window."""
    return min(min_events(slo, tier, floor) / (tier.long / 60)
               for slo in slos for tier, _ in slo.tiers()) / 2


def indicator_key(slo: Slo) -> str:
    """SLOs with the same key read the same input series (their bad share is shared)."""
    if isinstance(slo.indicator, SloLatency):
        return f"le={format_number(slo.indicator.latency)}"
    return "availability"


def bad_shares(slos: list[Slo], burn: float) -> dict[str, float]:
    """Share of bad events per indicator at `burn`× the budget of the first SLO reading it."""
    shares: dict[str, float] = {}
    for slo in slos:
        shares.setdefault(indicator_key(slo), min(1.0, burn * slo.budget))
    return shares


def minutes(profile: Profile) -> list[float]:
    return [rate for length, rate in profile.segments for _ in range(length)]


def model(slo: Slo, slos: list[Slo], profile: Profile,
          floor: int) -> dict[str, list[bool]]:
    """Per tier of `slo`, per minute: is it firing?

    Runs at every generation of a service with SLOs, several times per profile (`fitted`),
    over profiles of up to ~11 h whose 1d and 3d windows reach back to the start: window
    means come from running sums, and the bad share from each segment's burn once.
    """
    key = indicator_key(slo)
    burns = [burn for length, b in profile.segments
             for burn in [bad_shares(slos, b)[key] / slo.budget] * length]
    sums = list(itertools.accumulate(burns, initial=0.0))
    out = {}
    for tier, for_ in slo.tiers():
        factor = tier.factor(slo.window)
        enough = profile.traffic * tier.long / 60 >= min_events(slo, tier, floor)
        held = [enough and _mean(sums, t, tier.long) > factor
                and _mean(sums, t, tier.short) > factor for t in range(len(burns) + 1)]
        wait = round(for_ / 60)
        run = 0  # minutes in a row, up to t, that held
        firing = []
        for t, now in enumerate(held):
            run = run + 1 if now else 0
            firing.append(t >= wait and run > wait)
        out[f"{slo.name}/{tier.name}"] = firing
    return out


def _mean(sums: list[float], t: int, window: float) -> float:
    """Mean burn over the `window` before minute `t` (over what exists, as avg_over_time),
    from `sums`, the running sums of the burns per minute."""
    start = max(0, t - round(window / 60))
    return (sums[t] - sums[start]) / (t - start) if t > start else 0.0


def _tick_rates(slos: list[Slo], profile: Profile) -> list[dict[str, float]]:
    """Per evaluation tick (every TEST_INTERVAL from 0): the bad share of each indicator's
    5m rate, as ``rate(x[5m])`` sees the counters whose samples sit on whole minutes (the
    last 5 minutes before the tick, whatever the step)."""
    step, raw = round(TEST_INTERVAL / 60), round(RAW_WINDOW / 60)
    per_minute = [bad_shares(slos, b) for b in minutes(profile)]
    # At tick 0 no 5m rate exists yet (one sample), but availability's bad rate is
    # `... or on() vector(0)`: a 0 that the windows' avg_over_time of bad events counts and
    # that of all events does not (7d at 90%: 1/8 at 1h10m, not 1/7, below page-6h's 0.14).
    ticks = [{key: 0.0 for key in per_minute[0] if key == "availability"}]
    for k in range(step, len(per_minute) + 1, step):
        window = per_minute[max(0, k - raw):k]
        ticks.append({key: sum(m[key] for m in window) / len(window) for key in window[0]})
    return ticks


def _held(slo: Slo, tier: Tier, ticks: list[dict[str, float]], k: int, floor: int,
          traffic: float) -> bool:
    """Does `tier` of `slo` hold at tick index `k`? Its windows average the recorded 5m
    ratios of the ticks inside them (avg_over_time), both ends included."""
    def ratio(window: float) -> float:
        span_ticks = round(window / TEST_INTERVAL)
        key = indicator_key(slo)
        inside = [t[key] for t in ticks[max(0, k - span_ticks):k + 1] if key in t]
        return sum(inside) / len(inside) if inside else 0.0
    threshold = tier.factor(slo.window) * slo.budget
    return (traffic * tier.long / 60 >= min_events(slo, tier, floor)
            and ratio(tier.long) > threshold and ratio(tier.short) > threshold)


def first_onset(slos: list[Slo], profile: Profile, floor: int) -> int | None:
    """Minute at which the first tier of any SLO fires, evaluating as promtool does (every
    TEST_INTERVAL, pending from the first tick that holds, firing once `for` has passed)."""
    fired = [m for m in _fire_ticks(slos, profile, floor).values() if m is not None]
    return min(fired) if fired else None


def _fire_ticks(slos: list[Slo], profile: Profile, floor: int) -> dict[str, int | None]:
    ticks = _tick_rates(slos, profile)
    step = round(TEST_INTERVAL / 60)
    out: dict[str, int | None] = {}
    for slo in slos:
        for tier, for_ in slo.tiers():
            pending, fire = None, None
            for k in range(1, len(ticks)):
                if not _held(slo, tier, ticks, k, floor, profile.traffic):
                    pending = None
                elif pending is None:
                    pending = k
                if pending is not None and (k - pending) * TEST_INTERVAL >= for_:
                    fire = k * step
                    break
            out[f"{slo.name}/{tier.name}"] = fire
    return out


def discrete_firing(slos: list[Slo], profile: Profile, floor: int,
                    minute: int) -> dict[str, bool]:
    """Which tiers fire at `minute` in the tick-by-tick evaluation."""
    return {key: fire is not None and fire <= minute
            for key, fire in _fire_ticks(slos, profile, floor).items()}


def check_times(states: dict[str, list[bool]], length: int) -> list[int]:
    """Evaluation minutes at which every tier keeps its state for MARGIN either side."""
    step = round(TEST_INTERVAL / 60)
    times: list[int] = []
    for t in range(step, length + 1, step):
        window = range(max(0, t - MARGIN), min(length, t + MARGIN) + 1)
        if t + MARGIN > length and t != length - length % step:
            continue
        if any(len({s[i] for i in window}) > 1 for s in states.values()):
            continue
        if not times or t - times[-1] >= SPACING or _changed(states, times[-1], t):
            times.append(t)
    return times


def between_checks(states: dict[str, list[bool]], times: list[int], slos: list[Slo],
                   profile: Profile, floor: int) -> list[int]:
    """`times` and, for each state the model passes through between two transitions too
    close for `check_times` (less than two margins apart: after 6h of history, the 8x
    burn's ticket-1d fired 44 minutes before its page-6h; some windows and objectives of
    the sweep still do so), one check at the evaluation farthest from both, if that
    is CLEARANCE from each and the tick-by-tick evaluation (`discrete_firing`) agrees with
    the model there. Only while every tier has yet to resolve: the tick-by-tick
    evaluation follows first firings, not recoveries."""
    keys = list(states)
    length = len(states[keys[0]]) - 1
    step = round(TEST_INTERVAL / 60)
    changes = sorted({t for s in states.values() for t in range(1, length + 1)
                      if s[t] != s[t - 1]})
    seen = {tuple(states[k][t] for k in keys) for t in times}
    added: list[int] = []
    for start, end in itertools.pairwise(changes):
        if any(states[k][t - 1] and not states[k][t] for k in keys for t in range(1, end + 1)):
            break  # a tier resolved: the tick-by-tick evaluation no longer applies
        state = tuple(states[k][start] for k in keys)
        ticks = range(_tick_at(start, step), end, step)
        if state in seen or not ticks:
            continue
        best = max(ticks, key=lambda t: min(t - start, end - 1 - t))
        if min(best - start, end - 1 - best) < CLEARANCE:
            continue
        discrete = discrete_firing(slos, profile, floor, best)
        if all(discrete[k] == states[k][best] for k in keys):
            added.append(best)
            seen.add(state)
    return sorted({*times, *added})


def _changed(states: dict[str, list[bool]], a: int, b: int) -> bool:
    return any(s[a] != s[b] for s in states.values())


def input_series(service: Service, slos: list[Slo], profile: Profile) -> tuple[Series, ...]:
    """Counters of the service's request histogram whose bad shares follow `profile`."""
    histogram = service.setting("http", "histogram")
    status = service.setting("http", "status_label")
    labels = common.target_labels(service)
    per_sample = profile.traffic * SAMPLE / 60
    shares = [bad_shares(slos, b) for b in minutes(profile)]
    count = f"{histogram}_count"
    errors = [per_sample * s.get("availability", 0.0) for s in shares]
    series = [
        Series(promql.series(count, {**labels, status: "200"}),
               _counter([per_sample - e for e in errors], profile.vanish_after)),
        Series(promql.series(count, {**labels, status: "500"}),
               _counter(errors, profile.vanish_after)),
    ]
    for key in dict.fromkeys(indicator_key(slo) for slo in slos):
        if key.startswith("le="):
            series.append(Series(
                promql.series(f"{histogram}_bucket", {**labels, "le": key[3:]}),
                _counter([per_sample * (1 - s[key]) for s in shares], profile.vanish_after)))
    return tuple(series)


def _counter(increments: list[float], vanish_after: int | None = None) -> str:
    """promtool notation of a counter growing by each increment in turn, run-length coded;
    missing (``_``) from `vanish_after` on."""
    if vanish_after is not None:
        gone = len(increments) - vanish_after
        increments = increments[:vanish_after]
    parts, value, i = ["0"], 0.0, 0
    while i < len(increments):
        j = i
        while j < len(increments) and increments[j] == increments[i]:
            j += 1
        step = round(increments[i], 9)
        parts.append(f"{format_number(round(value + step, 9))}+{format_number(step)}x{j - i - 1}")
        value, i = round(value + step * (j - i), 9), j
    if vanish_after is not None:
        parts.append(f"_x{gone}")
    return " ".join(parts)


def scenarios(service: Service) -> list[Scenario]:
    """promtool scenarios over all availability and latency SLOs of a service (events SLOs
    read arbitrary PromQL, for which no input series can be synthesized; the import tests
    cover them against Sloth's own rules), and one for missing data covering every SLO."""
    if not any(slo.tiers() for slo in slos_of(service)):
        return []
    slos = [slo for slo in slos_of(service) if slo.signal != "slo" and slo.tiers()]
    # The model runs in the table's own time (every SLO at time_scale 1); the checks' times
    # and the sample interval are divided by the scale at the end (PromQL's rate and
    # avg_over_time do not change under a uniform change of time).
    ref = [slo.reference() for slo in slos]
    scale = time_scale(service)
    floor = common.min_events(service)
    out = []
    for profile in profiles(ref, floor) if slos else []:
        profile, states = fitted(profile, ref, floor)
        times = between_checks(states, check_times(states, len(minutes(profile))), ref,
                               profile, floor)
        if profile.name == FIRST.name:
            onset = first_onset(ref, profile, floor)
            if onset is not None:
                states = {**states}  # the exact onset of the first burn, tick by tick
                times = sorted({*times, onset - 1, onset})
                for key, fired in discrete_firing(ref, profile, floor, onset).items():
                    states[key] = [*states[key]]
                    states[key][onset - 1], states[key][onset] = False, fired
        checks = []
        for t in times:
            for name in dict.fromkeys(alert_name(slo) for slo in slos):
                checks.append(AlertCheck(t * 60.0 / scale, name, tuple(
                    ExpectedAlert(alert_labels(service, slo, tier.severity, burn_tier=tier.name),
                                  tier_annotations(service, slo, tier))
                    for slo in slos if alert_name(slo) == name
                    for tier, _ in slo.tiers() if states[f"{slo.name}/{tier.name}"][t])))
        out.append(Scenario(f"{service.name} SLOs: {profile.name}",
                            input_series(service, slos, profile), tuple(checks),
                            interval=SAMPLE / scale))
    return [*out, absent_scenario(service)]


def time_scale(service: Service) -> float:
    """The `time_scale` of the service's SLOs (the spec makes them all equal)."""
    return max((slo.time_scale for slo in slos_of(service)), default=1.0)


def _tick_at(minute: float, step: int) -> int:
    """The first evaluation minute (a multiple of `step`) at or after `minute`."""
    return -(-round(minute) // step) * step


def absent_scenario(service: Service) -> Scenario:
    """Every input series stops after 30 minutes: quiet until the 5m rate empties and the
    data-missing `for` has passed, firing after, for every alerting SLO of the service."""
    slos = [slo for slo in slos_of(service) if slo.tiers()]
    scale = time_scale(service)
    indicator_slos = [slo for slo in slos if slo.signal != "slo"]
    profile = Profile("", ((150, 0.0),), vanish_after=30)
    expected = tuple(ExpectedAlert(alert_labels(service, slo, "warning"),
                                   absent_alert(service, slo, slo.tiers()).annotations)
                     for slo in slos)
    # The last samples are at minute 30; the first evaluation whose 5m range holds fewer
    # than two of them is the first at or after 34 (35 at a 5m step, 40 at 10m; in
    # Prometheus 2 and 3 alike), so the alert is pending from there and fires at the first
    # evaluation `for` later. Series that never existed (events SLOs) are absent from 0.
    # The check one minute before reads the evaluation a step earlier: still quiet.
    step = round(TEST_INTERVAL / 60)
    gone = _tick_at(30 + round(RAW_WINDOW / 60) - 1, step)
    fires = {slo.name: (gone if slo in indicator_slos else 0)
             + _tick_at(absent_wait(slo.reference().tiers()) / 60, step) for slo in slos}
    first = round(min(fires.values()))
    checks = [AlertCheck(t * 60.0 / scale, ABSENT_ALERT,
                         tuple(e for slo, e in zip(slos, expected, strict=True)
                               if fires[slo.name] <= t))
              for t in sorted({first - 1, first, round(max(fires.values()))})]
    return Scenario(
        f"{service.name} SLOs: missing data alerts after its wait",
        input_series(service, indicator_slos, profile) if indicator_slos else (),
        tuple(checks), interval=SAMPLE / scale)


def build(service: Service) -> list[Piece]:
    """The alerts' group, the hourly means' group when an SLO has them, and the report's
    group, which reads the other two."""
    slos = slos_of(service)
    if not slos:
        return []
    step = TEST_INTERVAL / time_scale(service)
    made = [recordings(service, slo) for slo in slos]
    means = [r for _, hourly, _ in made for r in hourly]
    piece = Piece(group=GROUP, recordings=[r for alerting, _, _ in made for r in alerting],
                  alerts=[a for slo in slos for a in alerts(service, slo)],
                  scenarios=scenarios(service), test_step=step)
    report = Piece(group=REPORT_GROUP, recordings=[r for _, _, rep in made for r in rep],
                   scenarios=report_scenarios(service),
                   test_step=REPORT_INTERVAL / time_scale(service),
                   needs=(GROUP, HOURLY_GROUP) if means else (GROUP,))
    if not means:
        return [piece, report]
    return [piece, Piece(group=HOURLY_GROUP, recordings=means, needs=(GROUP,),
                         interval=HOURLY_INTERVAL / time_scale(service)), report]


# --- The report's test -----------------------------------------------------------------------

REPORT_BURN = 0.8  # burn of the report's test: 20% of the budget left, gone in a quarter
REPORT_MINUTES = 70  # the 1h window then no longer reaches back to the first evaluation


def report_scenarios(service: Service) -> list[Scenario]:
    """Steady traffic burning every availability and latency SLO at REPORT_BURN× its
    budget for REPORT_MINUTES, and each report recording's value at the end, worked out
    from the SLO's numbers: objective and budget as declared; burn rate (1h) = share /
    budget; the full-window ratio as `report_ratio` works it out; remaining budget =
    1 - ratio / budget; time to exhaustion = remaining × window / burn rate, at most the
    window. Few steps: the alerts' scenarios (hundreds of steps) do not evaluate these."""
    slos = [slo for slo in slos_of(service) if slo.signal != "slo"]
    if not slos:
        return []
    ref = [slo.reference() for slo in slos]
    scale = time_scale(service)
    shares = bad_shares(ref, REPORT_BURN)
    at = REPORT_MINUTES * 60.0 / scale
    checks = []
    for slo in slos:
        share = shares[indicator_key(slo)]
        burn = share / slo.budget
        remaining = 1 - report_ratio(slo, share) / slo.budget
        exhaustion = min(max(remaining, 0.0) * slo.window / burn, slo.window)
        labels = slo_labels(service, slo)
        # time to exhaustion as a share of the window: seconds rounded to a micro-unit
        # would compare float noise
        for expr, value in (
                (selector("slo:objective:ratio", service, slo), slo.objective),
                (selector("slo:error_budget:ratio", service, slo), slo.budget),
                (selector(REMAINING_RECORD, service, slo), remaining),
                (selector("slo:current_burn_rate:ratio", service, slo), burn),
                (f"{selector('slo:time_to_exhaustion:seconds', service, slo)} / "
                 f"{format_number(slo.window)}", exhaustion / slo.window)):
            checks.append(ExprCheck(at, expr, ((labels, value),)))
    profile = Profile("", ((REPORT_MINUTES, REPORT_BURN),))
    return [Scenario(f"{service.name} SLO report: {REPORT_BURN:g}x burn for "
                     f"{REPORT_MINUTES} minutes", input_series(service, slos, profile),
                     expr_checks=tuple(checks), interval=SAMPLE / scale)]


def report_ratio(slo: Slo, share: float) -> float:
    """The SLO window's error ratio at the end of the report's test (`share` of the traffic
    bad at every step), as promtool evaluates its rules: every group at every step
    (TEST_INTERVAL, whatever a group's own `interval`), so the window averages the 5m rates
    of every step so far, or, where it reads the hourly means (`uses_hourly`), the mean of
    those, each the mean of the rates of the steps within the hour before it (ranges
    include both ends). An availability SLO's bad rate is 0 rather than absent at the very
    first step (no rate yet, and its errors query reads nothing as 0: one zero more in
    its averages); every total is absent there."""
    ticks = REPORT_MINUTES // round(REPORT_INTERVAL / 60)
    bad: list[float | None] = [0.0 if slo.signal == "availability" else None, *[share] * ticks]
    total: list[float | None] = [None, *[1.0] * ticks]
    if uses_hourly(slo):
        inside = round(3600.0 / REPORT_INTERVAL)  # steps within an hour (at time_scale 1)
        bad, total = ([_present_mean(x[max(0, k - inside):k + 1]) for k in range(len(x))]
                      for x in (bad, total))
    mean_bad, mean_total = _present_mean(bad), _present_mean(total)
    assert mean_bad is not None and mean_total is not None
    return mean_bad / mean_total


def _present_mean(values: list[float | None]) -> float | None:
    """avg_over_time: the mean of the samples present, none if there are none."""
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


# --- Dashboard -------------------------------------------------------------------------------

PANELS = ("compliance", "budget", "burn", "events")


def charts(service: Service) -> list[Chart]:
    """Four panels per SLO, all reading the recordings above: good events against the
    objective, the remaining budget (also the SLO's stat on the overview), burn rates with
    the tiers' factors, and events. Burn alerts link to the burn panel, the data-missing
    alert to the events panel."""
    out = []
    for index, slo in enumerate(slos_of(service)):
        def sel(record: str, s: Slo = slo) -> str:
            return selector(record, service, s)

        def slot(panel: str, i: int = index) -> int:
            return 1 + len(PANELS) * i + PANELS.index(panel)

        window, budget, match = span(slo.window), number(slo.budget), (("slo", slo.name),)
        factors = {tier.name: tier.factor(slo.window) for tier, _ in slo.tiers()}
        pages = [f for name, f in factors.items() if name.startswith("page")]
        tickets = [f for name, f in factors.items() if name.startswith("ticket")]
        remaining = sel(REMAINING_RECORD)
        out.append(Chart(
            ROW, slot("compliance"), f"{slo.name}: good events", "percentunit",
            f"Share of good events over the last {window} and the last {span(hour(slo))}; the "
            f"line is the objective ({number(slo.objective * 100)}%).",
            (Query(f"1 - {sel(ratio_record(slo.window))}", window),
             Query(f"1 - {sel(ratio_record(hour(slo)))}", span(hour(slo)))),
            Thresholds(None, slo.objective, 0.0, lower_is_worse=True)))
        out.append(Chart(
            ROW, slot("budget"), f"{slo.name}: error budget remaining", "percentunit",
            f"Share of the {window} error budget ({budget} of events) left; 0 is exhausted. "
            "Lines: yellow 25% left, red exhausted.",
            (Query(remaining, "remaining"),), REMAINING_BUDGET,
            stat=remaining))
        out.append(Chart(
            ROW, slot("burn"), f"{slo.name}: burn rate", "short",
            "How many times faster than the budget allows bad events arrive, per window. "
            + ", ".join(f"{name} fires above {f:g}x" for name, f in factors.items())
            + ". Lines: yellow the slowest ticket factor, red the slowest page factor.",
            tuple(Query(f"{sel(ratio_record(w))} / {budget}", span(w))
                  for w in sorted({t.long for t, _ in slo.tiers()} | {slo.raw_window})),
            # `alerting: false`: no tier, no line (and no alert to link here)
            Thresholds(min(tickets, default=None), min(pages, default=None), 0.0)
            if factors else None,
            alerts=(alert_name(slo),) if factors else (), match=match))
        out.append(Chart(
            ROW, slot("events"), f"{slo.name}: events", "short",
            f"All and good events per second over {span(slo.raw_window)} (good = all - bad).",
            (Query(sel(total_record(slo.raw_window)), "all"),
             Query(f"{sel(total_record(slo.raw_window))} - {sel(bad_record(slo.raw_window))}",
                   "good")),
            alerts=(ABSENT_ALERT,), match=match))
    return out


# --- Validation across keys ------------------------------------------------------------------


def check_service(service: Any) -> None:
    """Refuse, for one input service, SLOs its other keys cannot support: availability and
    latency need the HTTP histogram; a latency threshold must be one of its buckets when
    they are declared (Prometheus cannot interpolate a share exactly between two)."""
    http = getattr(service, "http", None)
    slos = getattr(service, "slos", None) or []
    if len({slo.time_scale for slo in slos}) > 1:
        raise ValueError("slos: every SLO of a service must use the same time_scale (their "
                         "promtool scenarios run at one pace); found "
                         + ", ".join(sorted({format_number(slo.time_scale) for slo in slos})))
    for i, slo in enumerate(slos):
        if slo.signal in ("availability", "latency") and http is None:
            raise ValueError(f"slos[{i}] ({slo.name}): the {slo.signal} indicator reads the "
                             "service's HTTP histogram; declare 'http:' (its histogram and "
                             "status_label) or use indicator: {events: ...}")
        problem = (latency_problem(slo.indicator.latency, http.buckets)
                   if slo.signal == "latency" and http is not None else None)
        if problem:
            raise ValueError(f"slos[{i}].indicator.latency: {problem}")


SIGNAL = Signal(name="slo", keys=KEYS, build=build, charts=charts, check=check_service)
