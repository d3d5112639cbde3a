"""Availability: a dead or vanished service must never look healthy.

Every other alert needs series to compare; when a service is down or gone from service
discovery they all go quiet. These alerts cover that gap: a target that is down, no target
up at all (including no `up` series, i.e. vanished), and a metric the budgets read that the
service stopped exposing while it is up.
"""

from __future__ import annotations

from watchkeeper import promql
from watchkeeper.model import (
    Alert,
    AlertCheck,
    Chart,
    ExpectedAlert,
    Piece,
    Query,
    Scenario,
    Series,
    Service,
)
from watchkeeper.signals import common
from watchkeeper.signals.base import Signal
from watchkeeper.signals.threshold import alert_labels, steps_for
from watchkeeper.units import prometheus_duration

NAME = "absent"
OTHER_INSTANCE = "host-b:9090"


ALERTS = ("ServiceDown", "TargetDown", "ServiceMetricsAbsent")


def always_exposed(service: Service) -> list[str]:
    """Metrics the budgets read that an instance exposes from start-up, whatever its traffic,
    as each signal declares them (its `exposed`), once each.

    Histograms with labels appear only after their first observation, so an idle service
    legitimately lacks them; signals leave those out to keep this alert free of noise.
    """
    derived = service.derived
    if derived is not None and derived.exposed is not None:  # a view (parts): drawn already
        return list(derived.exposed)
    from watchkeeper.signals import SIGNALS  # the registry lists this module too

    return list(dict.fromkeys(m for signal in SIGNALS for m in signal.exposed(service)))


def _alerts(service: Service) -> list[Alert]:
    up = service.metric("up") + promql.matchers(service.selector)
    duration = prometheus_duration(service.for_)

    def alert(name, expr, severity, summary, description, **labels):
        return Alert(name, expr, service.for_,
                     {**alert_labels(service, NAME, severity), **labels},
                     {"summary": summary, "description": description})

    alerts = [
        alert("ServiceDown", f"absent({up} == 1)", "critical",
              f"{service.name} has no target up",
              f"No target of {service.name} has been up for {duration}: every target is "
              "down, or the service has vanished from service discovery."),
        alert("TargetDown", f"{up} == 0", "warning",
              f"{service.name} target {{{{ $labels.instance }}}} is down",
              f"Prometheus has failed to scrape {{{{ $labels.instance }}}} of {service.name} "
              f"for {duration}."),
    ]
    for metric in always_exposed(service):
        alerts.append(alert(
            "ServiceMetricsAbsent",
            f"absent({metric}{promql.matchers(service.selector)})\nand on() count({up} == 1) > 0",
            "warning",
            f"{service.name} stopped exposing {metric}",
            f"{service.name} is up but has not exposed {metric} for {duration}, so the "
            "budgets that read it cannot fire.",
            metric=metric))
    return alerts


def _render(alert: Alert, labels: dict[str, str]) -> ExpectedAlert:
    instance = labels.get("instance", "")
    return ExpectedAlert(
        labels={**labels, **alert.labels},
        annotations={key: value.replace("{{ $labels.instance }}", instance)
                     for key, value in alert.annotations.items()},
    )


def _scenarios(service: Service, alerts: list[Alert]) -> list[Scenario]:
    step = common.test_step(service)
    fire_at = steps_for(service.for_, step) * step
    samples = round(fire_at / step) + 3
    down, target_down, *metric_alerts = alerts
    up_name = service.metric("up")
    a = common.target_labels(service)
    b = {**service.selector.example, "instance": OTHER_INSTANCE}
    exposed = tuple(Series(promql.series(m, a), common.gauge(1, samples))
                    for m in always_exposed(service))

    def up(labels, value):
        return Series(promql.series(up_name, labels), common.gauge(value, samples))

    def fires(alert, *expected):
        pending = (AlertCheck(fire_at - step, alert.name),) if fire_at else ()
        return (*pending, AlertCheck(fire_at, alert.name, expected))

    def at_both(name, *expected):  # the same alerts one step before `for` and at it
        times = (fire_at - step, fire_at) if fire_at else (fire_at,)
        return tuple(AlertCheck(at, name, expected) for at in times)

    def half(parity: int, targets: tuple[Series, ...], down: tuple[ExpectedAlert, ...]):
        """Every other metric missing: each absent alert fires for its own metric and stays
        quiet for the others present, while a target may be down too."""
        missing = [i for i in range(len(metric_alerts)) if i % 2 == parity]
        names = ", ".join(metric_alerts[i].labels["metric"] for i in missing) or "none"
        expected = tuple(_render(metric_alerts[i], service.selector.equalities())
                         for i in missing)
        return Scenario(
            f"ServiceMetricsAbsent fires for each missing metric ({names}), "
            f"quiet for the others; TargetDown {'names the one target down' if down else 'quiet'}",
            (*targets, *(s for i, s in enumerate(exposed) if i not in missing)),
            (*(fires(target_down, *down) if down else at_both("TargetDown")),
             *at_both("ServiceDown"),
             *(fires(metric_alerts[0], *expected) if expected else
               at_both("ServiceMetricsAbsent"))))

    # Every alert is checked quiet on its good side and firing on its bad side, two
    # properties per promtool test group where they do not interfere: the absent alerts are
    # told apart by their `metric` label and the down target by its `instance`.
    return [
        half(1, (up(a, 1), up(b, 0)), (_render(target_down, b),)),
        half(0, (up(a, 1), up(b, 1)), ()),
        Scenario("ServiceDown fires when every target is down", (up(a, 0), up(b, 0)),
                 fires(down, _render(down, {}))),
        Scenario("ServiceDown fires when the service vanished from discovery",
                 (up({"instance": "unrelated:9090"}, 1),),  # lacks the selector's labels
                 fires(down, _render(down, {}))),
    ]


def build(service: Service) -> list[Piece]:
    alerts = _alerts(service)
    return [Piece(group="availability", alerts=alerts, scenarios=_scenarios(service, alerts))]


def charts(service: Service) -> list[Chart]:
    """The first panel, above every row: how many targets are up."""
    up = service.metric("up") + promql.matchers(service.selector)
    return [Chart(None, 1, "Targets up", "short",
                  "Scrape targets of the service that are up (alerts ServiceDown, TargetDown, "
                  "ServiceMetricsAbsent).", (Query(f"sum({up})", "up"),), alerts=ALERTS)]


SIGNAL = Signal(NAME, (), build, charts, {"up": "up"})
