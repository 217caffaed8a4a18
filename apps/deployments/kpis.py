"""Deployment KPIs: success rate, DORA's four keys for model deployments (frequency, lead time, change failure
rate, time to restore) and the rollback MTTR, from the DORA record each finished deployment leaves
(`DoraRecord`, written by `services.dora.record_dora`). SLO attainment and error budget come from the endpoints'
SLOs and the traffic beat's rollups (`EndpointTraffic`), drift-monitor coverage from the monitors deployment
policies declare."""

from __future__ import annotations

from abc import abstractmethod
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import BooleanField, Count, ExpressionWrapper, F, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce

from apps.dashboards.registry import (
    Area,
    Better,
    Kpi,
    Measurement,
    PartialRow,
    Period,
    Sample,
    SamplesKpi,
    Scope,
    ShareKpi,
    Target,
    Unit,
    of_teams,
    register,
)
from apps.deployments.models import Deployment, DeploymentState, DoraOutcome, DoraRecord, Endpoint, Environment
from apps.deployments.selectors import EndpointCounts, endpoint_traffic

NO_FINISHED = "no data yet: no deployment finished in this period"
NO_PRODUCTION_FINISHED = "no data yet: no production deployment finished in this period"
NO_PRODUCTION_ENDPOINT = "no data yet: no production endpoint in this period"
NO_LEAD_TIME = "no data yet: no production deployment of a new version succeeded in this period"
NO_RESTORE = "no data yet: no failed production deployment was followed by a success in this period"
NO_ROLLBACK = "no data yet: no production rollout was rolled back after a breach in this period"

# What counts against a deployment: it failed, or it was rolled back (during the canary, after serving 100%, or
# later by an endpoint rollback, which turns its record into a change failure). Aborted ones are a person
# calling a rollout off and count neither way.
FAILURES = (DoraOutcome.FAILED, DoraOutcome.CAUGHT_IN_CANARY, DoraOutcome.CHANGE_FAILURE)
# Served 100% of a production endpoint's traffic, whether or not it was rolled back afterwards.
SHIPPED = (DoraOutcome.SUCCESS, DoraOutcome.CHANGE_FAILURE)
SOURCE = "DORA records of finished deployments (apps/deployments)"


def _finished(period: Period) -> Q:
    return Q(finished_at__gte=period.start, finished_at__lt=period.end)


def _production() -> QuerySet[DoraRecord]:
    return DoraRecord.objects.filter(environment=Environment.PRODUCTION)


def _hours(seconds: float) -> float:
    return seconds / 3600


def _seconds_between(start: datetime, end: datetime) -> float:
    return max(0.0, (end - start).total_seconds())


def _revert(field: str) -> Subquery:
    """`field` of the endpoint rollback that undid the record's deployment (it succeeded), if one did."""
    reverts = Deployment.objects.filter(reverts=OuterRef("deployment_id"), state=DeploymentState.SUCCEEDED)
    return Subquery(reverts.order_by("finished_at").values(field)[:1])


# The split of the deployment KPIs: the endpoint a DORA record's deployment rolled out to.
ENDPOINT = "deployment__endpoint__name"


class _Share(ShareKpi):
    """Base of the share-of-finished-deployments KPIs: `part` of the records that finished in the period."""

    area = Area.DELIVERY
    source = SOURCE
    dimensions = ("team", "endpoint")
    split = "endpoint"
    part: Q

    @abstractmethod
    def _records(self, period: Period) -> QuerySet[DoraRecord]:
        """The records that finished in the period."""

    def partials(self, *, period: Period, team_ids: list[int] | None) -> Iterable[PartialRow]:
        return self.count_records(self._records(period), self.part, period=period, when="finished_at",
                                  split_field=ENDPOINT, team_ids=team_ids)  # fmt: skip


@register
class DeploymentSuccessRate(_Share):
    """Deployments that succeeded / deployments that finished in the period (production and staging), in percent.
    Failed and rolled-back ones (during the canary, after serving 100%, or undone later by an endpoint rollback)
    count as failures; aborted ones (a person called the rollout off) count neither way; rollouts still in
    flight are not counted until they finish."""

    key = "deployment_success_rate"
    name = "Deployment success rate"
    target = Target(green=95, amber=90, note="seed: 95-99% deployment success")
    part = Q(outcome=DoraOutcome.SUCCESS)
    no_data = NO_FINISHED

    def _records(self, period: Period) -> QuerySet[DoraRecord]:
        return DoraRecord.objects.filter(_finished(period)).exclude(outcome=DoraOutcome.ABORTED)


@register
class ChangeFailureRate(_Share):
    """DORA's change failure rate: production deployments that failed or were rolled back (during the canary,
    after serving 100%, or undone later by an endpoint rollback) / production deployments that finished in the
    period, in percent; aborted ones count neither way."""

    key = "change_failure_rate"
    name = "Change failure rate"
    target = Target(green=5, amber=10, better=Better.LOWER, note="seed: change failure rate < 5-10%")
    part = Q(outcome__in=FAILURES)
    no_data = NO_PRODUCTION_FINISHED

    def _records(self, period: Period) -> QuerySet[DoraRecord]:
        return _production().filter(_finished(period)).exclude(outcome=DoraOutcome.ABORTED)


@register
class DeploymentFrequency(Kpi):
    """DORA's deployment frequency, per week: production deployments that finished in the period having served
    100% of their endpoint's traffic (succeeded, including those rolled back afterwards; an endpoint rollback is
    a deployment too) x 7 / the period's days. 0 when the team had production endpoints but shipped nothing;
    no data when it had none."""

    key = "deployment_frequency"
    name = "Deployment frequency (per week)"
    area = Area.DELIVERY
    unit = Unit.COUNT
    source = SOURCE
    dimensions = ("team", "endpoint")

    def _shipped(self, period: Period) -> QuerySet[DoraRecord]:
        return _production().filter(_finished(period), outcome__in=SHIPPED)

    def _endpoints(self, period: Period) -> QuerySet[Endpoint]:
        """Production endpoints that existed during the period (created before its end, not torn down before it)."""
        alive = Q(torn_down_at__isnull=True) | Q(torn_down_at__gte=period.start)
        return Endpoint.objects.filter(alive, environment=Environment.PRODUCTION, created_at__lt=period.end)

    def _rate(self, count: int, period: Period) -> Measurement:
        return Measurement(value=count * 7 / period.days, sample=count)

    def measure(self, *, period: Period, scope: Scope) -> Measurement:
        count = scope.filter(self._shipped(period)).count()
        if not count and not scope.filter(self._endpoints(period)).exists():
            return Measurement.none(NO_PRODUCTION_ENDPOINT)
        return self._rate(count, period)

    def by_team(self, *, period: Period, team_ids: Iterable[int]) -> dict[int, Measurement]:
        wanted = list(team_ids)
        counts = dict(
            self._shipped(period)
            .filter(team_id__in=wanted)
            .values("team_id")
            .annotate(n=Count("pk"))
            .values_list("team_id", "n")
        )
        serving = set(self._endpoints(period).filter(team_id__in=wanted).values_list("team_id", flat=True))
        return {
            team_id: self._rate(counts.get(team_id, 0), period)
            if team_id in counts or team_id in serving
            else Measurement.none(NO_PRODUCTION_ENDPOINT)
            for team_id in wanted
        }


class _Hours(SamplesKpi):
    """Base of the KPIs made of hours per production DORA record: `_values` gives (team id, endpoint, when it
    counts, hours) for the period."""

    area = Area.DELIVERY
    unit = Unit.HOURS
    source = SOURCE
    split = "endpoint"

    @abstractmethod
    def _values(self, period: Period, records: QuerySet[DoraRecord]) -> Iterable[Sample]:
        """(team id, endpoint, when it counts, hours) per record of the period."""

    def samples(self, *, period: Period, team_ids: list[int] | None) -> Iterable[Sample]:
        return self._values(period, of_teams(_production(), team_ids))


@register
class DeploymentLeadTimeP50(_Hours):
    """DORA's lead time for changes, median: hours from a model version's registration to its production
    deployment serving 100%, over the production deployments that succeeded and finished in the period (also
    those rolled back later: the change reached production). Endpoint rollbacks are left out: they put an old
    version back, not a change."""

    key = "deployment_lead_time_p50"
    name = "Deployment lead time P50"
    dimensions = ("team", "endpoint")
    no_data = NO_LEAD_TIME
    quantile = 50

    def _values(self, period: Period, records: QuerySet[DoraRecord]) -> Iterable[Sample]:
        rows = records.filter(_finished(period), lead_time_seconds__isnull=False, deployment__reverts__isnull=True)
        found = rows.values_list("team_id", ENDPOINT, "finished_at", "lead_time_seconds")
        return [
            (team_id, endpoint, at, _hours(seconds)) for team_id, endpoint, at, seconds in found if seconds is not None
        ]


@register
class TimeToRestore(_Hours):
    """DORA's time to restore, mean: for each production deployment that failed or was rolled back, hours from
    its end (for one undone by an endpoint rollback: from when that rollback was asked for) to the next
    deployment of the same endpoint that succeeded, counted in the period that success finished in. Failures
    with no success after them yet are not counted until one comes."""

    key = "time_to_restore"
    name = "Time to restore"
    target = Target(green=1, amber=4, better=Better.LOWER, note="seed: MTTR Sev-1 < 1 h, Sev-2 < 4 h")
    dimensions = ("team", "endpoint")
    no_data = NO_RESTORE

    def _values(self, period: Period, records: QuerySet[DoraRecord]) -> Iterable[Sample]:
        following = Deployment.objects.filter(
            endpoint_id=OuterRef("deployment__endpoint_id"),
            state=DeploymentState.SUCCEEDED,
            finished_at__gt=OuterRef("failed_at"),
        ).order_by("finished_at")
        rows = (
            records.filter(outcome__in=FAILURES, finished_at__lt=period.end)
            .annotate(failed_at=Coalesce(_revert("created_at"), F("finished_at")))
            .annotate(next_success=Subquery(following.values("finished_at")[:1]))
            .filter(next_success__gte=period.start, next_success__lt=period.end)
            .values_list("team_id", ENDPOINT, "failed_at", "next_success")
        )
        return [(team_id, endpoint, restored, _hours(_seconds_between(failed, restored)))
                for team_id, endpoint, failed, restored in rows]  # fmt: skip


@register
class RollbackMttr(_Hours):
    """Rollback MTTR, mean: hours from a production rollout's first breaching measurement to its traffic being
    back on the stable version (for a rollout undone by an endpoint rollback: from when the rollback was asked
    for to when it succeeded), counted in the period traffic was restored in. Rollbacks without a breach (a
    person's call) are not counted. Unlike time to restore, this ends when the old version serves again, not
    when a new one succeeds."""

    key = "rollback_mttr"
    name = "Rollback MTTR"
    target = Target(green=1, amber=4, better=Better.LOWER, note="seed: MTTR Sev-1 < 1 h, Sev-2 < 4 h")
    dimensions = ("team", "endpoint")
    no_data = NO_ROLLBACK

    def _values(self, period: Period, records: QuerySet[DoraRecord]) -> Iterable[Sample]:
        rows = (
            records.filter(time_to_restore_seconds__isnull=False)
            .annotate(restored=Coalesce(F("deployment__restored_at"), _revert("finished_at")))
            .filter(restored__gte=period.start, restored__lt=period.end)
            .values_list("team_id", ENDPOINT, "restored", "time_to_restore_seconds")
        )
        return [(team_id, endpoint, restored, _hours(seconds))
                for team_id, endpoint, restored, seconds in rows if seconds is not None]  # fmt: skip


class _SloTraffic(Kpi):
    """Base of the KPIs of the endpoints with an SLO, from their traffic rows: `value` folds an endpoint's (or a
    scope's) counts; the breakdown is per endpoint."""

    area = Area.DELIVERY
    unit = Unit.PERCENT
    source = "endpoint traffic rollups and SLOs (apps/deployments traffic beat)"
    dimensions = ("team", "endpoint")

    @staticmethod
    @abstractmethod
    def value(rows: list[EndpointCounts]) -> float:
        """The KPI over the rows' summed counts."""

    def measure(self, *, period: Period, scope: Scope) -> Measurement:
        return self._measure(slo_traffic(period=period, team_ids=_team_list(scope)))

    def by_team(self, *, period: Period, team_ids: Iterable[int]) -> dict[int, Measurement]:
        return _per_team_measurements(self._measure, slo_traffic(period=period, team_ids=list(team_ids)), team_ids)

    def _measure(self, rows: list[EndpointCounts]) -> Measurement:
        return _traffic_measurement(rows, self.value)


@register
class SloAttainment(_SloTraffic):
    """Per endpoint with an SLO: good requests / requests answered in the period, in percent, where a request is
    good when it was not answered 5xx and not slower than the endpoint's latency objective (its objective when
    the traffic beat counted it); a scope's value is weighted by requests (all its endpoints' good requests / all
    their requests). The traffic beat's hourly rows count in the period their hour starts in; endpoints without
    an SLO are left out."""

    key = "slo_attainment"
    name = "SLO attainment"
    target = Target(green=99.5, amber=99.0, note="seed: SLO attainment 99.5-99.9%")

    @staticmethod
    def value(rows: list[EndpointCounts]) -> float:
        requests = sum(row.requests for row in rows)
        return 100.0 * (requests - sum(row.bad for row in rows)) / requests


@register
class ErrorBudgetLeft(_SloTraffic):
    """Per endpoint with an SLO: 100 x (1 - bad requests / the bad requests its SLO allows), in percent, where the
    allowance is requests x (1 - availability objective / 100) and bad is 5xx or slower than the latency
    objective. 100 is untouched, 0 spent exactly; negative means overspent (-100: twice the allowance), floored
    at -100 so one outage does not flatten the chart. A scope's value is 100 x (1 - its bad requests / its
    endpoints' allowances summed). Periods and endpoints as for SLO attainment."""

    key = "error_budget_left"
    name = "Error budget left"

    @staticmethod
    def value(rows: list[EndpointCounts]) -> float:
        allowed = sum(row.requests * (1 - (row.objective or 0) / 100) for row in rows)
        return max(BUDGET_FLOOR, 100.0 * (1 - sum(row.bad for row in rows) / allowed))


@register
class DriftDetectionCoverage(Kpi):
    """Production endpoints serving a version whose deployment policy declares a drift or quality monitor /
    production endpoints serving a version, in percent, as of the period's end. An endpoint serves a version when
    a deployment onto it succeeded before the period's end and it was not torn down by then (the version is the
    latest such deployment's); that version's policy is the analysis of its latest successful deployment onto
    the endpoint that was not an endpoint rollback (a rollback puts the version back under its own policy).
    Breakdown: 100 or 0 per endpoint."""

    key = "drift_detection_coverage"
    name = "Drift detection coverage"
    area = Area.GOVERNANCE
    unit = Unit.PERCENT
    source = "endpoints and the monitors their deployments' policies declare (apps/deployments)"
    target = Target(green=80, amber=60, note="seed: drift detection coverage 80-100%")
    dimensions = ("team", "endpoint")

    def measure(self, *, period: Period, scope: Scope) -> Measurement:
        return self._measure(serving_endpoints(period=period, team_ids=_team_list(scope)))

    def by_team(self, *, period: Period, team_ids: Iterable[int]) -> dict[int, Measurement]:
        found = serving_endpoints(period=period, team_ids=list(team_ids))
        return _per_team_measurements(self._measure, found, team_ids)

    def _measure(self, rows: list[ServingEndpoint]) -> Measurement:
        if not rows:
            return Measurement.none(NO_SERVING_ENDPOINT)
        return Measurement(
            value=100.0 * sum(row.monitored for row in rows) / len(rows),
            sample=len(rows),
            breakdown={row.endpoint: 100.0 if row.monitored else 0.0 for row in rows},
        )


# --- Helpers of the SLO, error budget and drift coverage KPIs --------------------------------------------------------

NO_SLO_TRAFFIC = "no data yet: no endpoint with an SLO answered requests in this period"
NO_SERVING_ENDPOINT = "no data yet: no production endpoint served a version at the end of this period"
BUDGET_FLOOR = -100.0
# A deployment policy declares a monitor when its analysis lists one of these kinds (analysis/spec.py validates).
MONITORED = Q(analysis__monitors__contains=[{"kind": "drift"}]) | Q(analysis__monitors__contains=[{"kind": "quality"}])


@dataclass(frozen=True)
class ServingEndpoint:
    team_id: int
    endpoint: str  # "team-slug/endpoint-name", as EndpointCounts.label
    monitored: bool


def _team_list(scope: Scope) -> list[int] | None:
    return None if scope.teams is None else sorted(scope.teams)


def slo_traffic(*, period: Period, team_ids: list[int] | None) -> list[EndpointCounts]:
    return endpoint_traffic(start=period.start, end=period.end, team_ids=team_ids, slo_only=True)


def _traffic_measurement(rows: list[EndpointCounts], value: Callable[[list[EndpointCounts]], float]) -> Measurement:
    if not rows:
        return Measurement.none(NO_SLO_TRAFFIC)
    return Measurement(
        value=value(rows),
        sample=sum(row.requests for row in rows),
        breakdown={row.label: value([row]) for row in rows},
    )


def _per_team_measurements(
    measure: Callable[[list[Any]], Measurement], rows: list[Any], team_ids: Iterable[int]
) -> dict[int, Measurement]:
    """`measure` of each team's share of `rows` (records with a `team_id`)."""
    per_team: dict[int, list[Any]] = defaultdict(list)
    for row in rows:
        per_team[row.team_id].append(row)
    return {team_id: measure(per_team.get(team_id, [])) for team_id in team_ids}


def serving_endpoints(*, period: Period, team_ids: list[int] | None) -> list[ServingEndpoint]:
    """Production endpoints serving a version at the period's end, each with whether that version's policy
    declares a monitor: one query (two correlated subqueries)."""
    end = period.end
    succeeded = Deployment.objects.filter(endpoint=OuterRef("pk"), state=DeploymentState.SUCCEEDED, finished_at__lt=end)
    policy = (
        succeeded.filter(version=OuterRef("serving_version"), reverts__isnull=True)
        .annotate(monitored=ExpressionWrapper(MONITORED, output_field=BooleanField()))
        .order_by("-finished_at")
    )
    endpoints = Endpoint.objects.filter(
        Q(torn_down_at__isnull=True) | Q(torn_down_at__gte=end), environment=Environment.PRODUCTION
    )
    if team_ids is not None:
        endpoints = endpoints.filter(team_id__in=team_ids)
    rows = (
        endpoints.annotate(serving_version=Subquery(succeeded.order_by("-finished_at").values("version_id")[:1]))
        .filter(serving_version__isnull=False)
        .annotate(monitored=Subquery(policy.values("monitored")[:1]))
        .order_by("team__slug", "name")
        .values_list("team_id", "team__slug", "name", "monitored")
    )
    return [
        ServingEndpoint(team_id=team_id, endpoint=f"{slug}/{name}", monitored=bool(monitored))
        for team_id, slug, name, monitored in rows
    ]
