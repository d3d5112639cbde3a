"""Background jobs, per `job_name`: failure ratio, duration quantiles and queue backlog.

Reads the job metrics the exporters emit (``jobs_processed_total{job_name, result}``,
``job_duration_seconds{job_name}``, ``job_queue_depth{job_name}``). Rates and quantiles
are summed over the service's instances per job; the backlog is the largest depth any
instance reports, since workers sharing one queue each report the same depth.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Annotated

from pydantic import AfterValidator, Field, model_validator
from watchkeeper import promql
from watchkeeper.budgets import Count, LatencyBudgets, RatioThresholds, Strict, Thresholds
from watchkeeper.model import Chart, Piece, Quantiles, Query, Recording, Row, Series, Service
from watchkeeper.model import Thresholds as Budget
from watchkeeper.signals import common
from watchkeeper.signals.base import Key, Signal
from watchkeeper.signals.latency import QUANTILE_SLOTS
from watchkeeper.signals.panels import budget_chart
from watchkeeper.signals.threshold import (
    COUNT,
    DURATION,
    RATIO,
    Synthesis,
    ThresholdSignal,
    build_alerts,
    build_scenarios,
)

ROW = Row("jobs", "Background jobs", 600)  # 500 is the SLO row
MAX_JOBS = 9  # ten panel slots per job in the row
METRICS = {"jobs_processed": "jobs_processed_total", "job_duration": "job_duration_seconds",
           "job_queue_depth": "job_queue_depth", "job_label": "job_name"}
RESULT_LABEL, FAILED = "result", "error"
JOBS_PER_STEP = 100_000  # fine enough for a 0.1% failure budget to be whole jobs
ALERTS = {"failure_ratio": "JobFailureRatioHigh", "backlog": "JobBacklogHigh"}


@dataclass(frozen=True)
class Job:
    """Resolved budgets of one kind of job."""

    name: str
    failure_ratio: Budget | None
    duration: Quantiles
    backlog: Budget | None


class BacklogThresholds(Thresholds):
    """Jobs waiting in the queue; higher is worse."""

    warning: Count | None = Field(None, description="Ticket above this many queued jobs.")
    critical: Count | None = Field(None, description="Page above this many queued jobs.")


class JobSpec(Strict):
    """One kind of background job, told apart by the `job_name` label."""

    name: Annotated[str, Field(min_length=1, description="Value of the job_name label.")]
    failure_ratio: RatioThresholds | None = Field(
        None, description="Failed over processed jobs (result=\"error\").")
    duration: LatencyBudgets | None = Field(
        None, description="Budgets per quantile of job_duration_seconds.")
    backlog: BacklogThresholds | None = Field(
        None, description="Queued jobs (job_queue_depth), the largest any instance reports.")

    @model_validator(mode="after")
    def _some_budget(self) -> JobSpec:
        if self.failure_ratio is None and self.duration is None and self.backlog is None:
            raise ValueError("set at least one of 'failure_ratio', 'duration' or 'backlog'")
        return self

    def resolve(self, default_for: float) -> Job:
        return Job(self.name,
                   self.failure_ratio.resolve(default_for) if self.failure_ratio else None,
                   self.duration.resolve(default_for) if self.duration else (),
                   self.backlog.resolve(default_for) if self.backlog else None)


def _check_jobs(jobs: list[JobSpec]) -> list[JobSpec]:
    names = [job.name for job in jobs]
    if duplicates := sorted({name for name in names if names.count(name) > 1}):
        raise ValueError(f"job names must be unique, repeated: {', '.join(duplicates)}")
    if len(jobs) > MAX_JOBS:
        raise ValueError(f"at most {MAX_JOBS} jobs per service; split the service")
    return jobs


KEY = Key(None, "jobs", Annotated[list[JobSpec], AfterValidator(_check_jobs)],
          "Background jobs and their budgets, from the exporters' job metrics.", default=[])


def _records(service: Service) -> dict[str, str]:
    w = common.window(service)
    m = service.metric
    return {
        "processed": f"service_job:{m('jobs_processed')}:rate{w}",
        "failure_ratio": f"service_job:{m('jobs_processed')}:failure_ratio_rate{w}",
        "durations": f"service_job:{m('job_duration')}_count:rate{w}",
        "backlog": f"service_job:{m('job_queue_depth')}:max",
    }


def _recordings(service: Service, jobs: tuple[Job, ...]) -> list[Recording]:
    m, w, label = service.metric, common.window(service), service.metric("job_label")
    sel = promql.matchers(service.selector)
    failed = promql.matchers(service.selector, **{RESULT_LABEL: FAILED})
    names, by = _records(service), f"sum by ({label})"
    svc = {"service": service.name}
    recordings = [
        Recording(names["processed"], f"{by} (rate({m('jobs_processed')}{sel}[{w}]))", svc),
        Recording(names["failure_ratio"],
                  f"{by} (rate({m('jobs_processed')}{failed}[{w}]))\n/\n"
                  f"{by} (rate({m('jobs_processed')}{sel}[{w}]))", svc),
    ]
    quantiles = {q.name: q.q for job in jobs for q in job.duration}
    if quantiles:
        recordings.append(Recording(
            names["durations"], f"{by} (rate({m('job_duration')}_count{sel}[{w}]))", svc))
        recordings.extend(common.quantile_recordings(
            service, m("job_duration"), sorted(quantiles.items(), key=lambda item: item[1]),
            level="service_job", aggregate=f"sum by (le, {label})"))
    if any(job.backlog for job in jobs):
        recordings.append(Recording(names["backlog"],
                                    f"max by ({label}) ({m('job_queue_depth')}{sel})", svc))
    return recordings


def _selector(service: Service, record: str, job: Job) -> str:
    return common.service_selector(record, service, **{service.metric("job_label"): job.name})


def _failure(service: Service, job: Job, step: float) -> ThresholdSignal:
    label, metric = service.metric("job_label"), service.metric("jobs_processed")
    labels = {**common.target_labels(service), label: job.name}
    result = {label: job.name, "service": service.name}

    def synthesize(value: float, samples: int, total: float = JOBS_PER_STEP) -> Synthesis:
        failed = round(value * total, 9)
        return Synthesis((
            Series(promql.series(metric, {**labels, RESULT_LABEL: "success"}),
                   common.counter(total - failed, samples)),
            Series(promql.series(metric, {**labels, RESULT_LABEL: FAILED}),
                   common.counter(failed, samples)),
        ), failed / total, result)

    names = _records(service)
    assert job.failure_ratio is not None
    return ThresholdSignal(
        signal="jobs", alert=ALERTS["failure_ratio"], subject="failure ratio",
        where=f"of job {{{label}}} in {{service}}", unit=RATIO, budget=job.failure_ratio,
        value_expr=_selector(service, names["failure_ratio"], job),
        guard=common.traffic_guard(service, _selector(service, names["processed"], job),
                                   on=f"service, {label}"),
        synthesize=synthesize,
        sparse=lambda value, samples: synthesize(value, samples,
                                                 common.sparse_per_step(service, step)),
        onset_steps=1, recording=_selector(service, names["failure_ratio"], job),
        upper_bound=1.0, over=f" over the last {common.window(service)}",
        labels=((label, job.name),))


def duration_alert(quantile: str) -> str:
    return f"JobDuration{quantile.upper()}High"


def _durations(service: Service, job: Job, step: float) -> list[ThresholdSignal]:
    label, histogram = service.metric("job_label"), service.metric("job_duration")
    labels = {**common.target_labels(service), label: job.name}
    result = {label: job.name, "service": service.name}
    names = _records(service)
    signals = []
    for quantile in job.duration:
        record = _selector(service, common.quantile_record(
            service, histogram, quantile.name, "service_job"), job)
        signals.append(ThresholdSignal(
            signal="jobs", alert=duration_alert(quantile.name),
            subject=f"{quantile.name} duration", where=f"of job {{{label}}} in {{service}}",
            unit=DURATION, budget=quantile.budget, value_expr=record,
            guard=common.traffic_guard(service, _selector(service, names["durations"], job),
                                       on=f"service, {label}", q=quantile.q),
            synthesize=partial(_histogram, histogram, labels, quantile.q,
                               common.traffic_per_step(service, step, quantile.q), result),
            sparse=partial(_histogram, histogram, labels, quantile.q,
                           common.sparse_per_step(service, step, quantile.q), result),
            onset_steps=1, recording=record, over=f" over the last {common.window(service)}",
            labels=((label, job.name),)))
    return signals


def _histogram(histogram, labels, q, per_step, result, value, samples):
    return common.histogram_synthesis(histogram, labels, q, value, per_step, samples, result)


def _backlog(service: Service, job: Job) -> ThresholdSignal:
    label, metric = service.metric("job_label"), service.metric("job_queue_depth")
    labels = {**common.target_labels(service), label: job.name}
    assert job.backlog is not None
    return ThresholdSignal(
        signal="jobs", alert=ALERTS["backlog"], subject="queue backlog",
        where=f"of job {{{label}}} in {{service}}", unit=COUNT, budget=job.backlog,
        value_expr=_selector(service, _records(service)["backlog"], job),
        synthesize=lambda value, samples: Synthesis(
            (Series(promql.series(metric, labels), common.gauge(value, samples)),), value,
            {label: job.name, "service": service.name}),
        onset_steps=0, recording=_selector(service, _records(service)["backlog"], job),
        labels=((label, job.name),))


def _signals(service: Service, job: Job, step: float) -> list[ThresholdSignal]:
    signals = [_failure(service, job, step)] if job.failure_ratio else []
    signals.extend(_durations(service, job, step))
    if job.backlog:
        signals.append(_backlog(service, job))
    return signals


def build(service: Service) -> list[Piece]:
    jobs: tuple[Job, ...] = service.budget(KEY.path) or ()
    if not jobs:
        return []
    step = common.test_step(service)
    piece = Piece(group="jobs", recordings=_recordings(service, jobs))
    for job in jobs:
        for sig in _signals(service, job, step):
            piece.alerts.extend(build_alerts(sig, service))
            piece.scenarios.extend(build_scenarios(sig, service, step))
    return [piece]


def charts(service: Service) -> list[Chart]:
    """Per job, ten slots: failure ratio, backlog, then one panel per duration quantile."""
    jobs: tuple[Job, ...] = service.budget(KEY.path) or ()
    label, names = service.metric("job_label"), _records(service)
    result = []
    for index, job in enumerate(jobs):
        base, match = 10 * index, ((label, job.name),)
        if job.failure_ratio:
            expr = _selector(service, names["failure_ratio"], job)
            result.append(budget_chart(
                ROW, base + 1, f"Job {job.name}: failure ratio", RATIO,
                f"Failed over processed {job.name} jobs. ", (Query(expr, "failure ratio"),),
                job.failure_ratio, ALERTS["failure_ratio"], expr, match=match))
        if job.backlog:
            expr = _selector(service, names["backlog"], job)
            result.append(budget_chart(
                ROW, base + 2, f"Job {job.name}: backlog", COUNT,
                f"Queued {job.name} jobs, the largest any instance reports. ",
                (Query(expr, "queued"),), job.backlog, ALERTS["backlog"], expr, match=match))
        for quantile in job.duration:
            expr = _selector(service, common.quantile_record(
                service, service.metric("job_duration"), quantile.name, "service_job"), job)
            result.append(budget_chart(
                ROW, base + 3 + QUANTILE_SLOTS.index(quantile.name),
                f"Job {job.name}: duration {quantile.name}", DURATION,
                f"{quantile.name} of {job.name} job durations over "
                f"{common.window(service)}, all instances. ", (Query(expr, quantile.name),),
                quantile.budget, duration_alert(quantile.name), expr, match=match))
    return result


SIGNAL = Signal("jobs", (KEY,), build, charts, METRICS)
