"""Terraform run KPIs (the seed blueprint's table): run success, queue time, provisioning lead time, drift,
approval cycle time and time to restore, from Paved's own runs, workspaces and approvals."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Count, Min, Q, Subquery

from apps.dashboards.registry import (
    Area,
    Better,
    Measurement,
    PartialRow,
    Period,
    Sample,
    SamplesKpi,
    ShareKpi,
    SumsKpi,
    Target,
    Unit,
    of_teams,
    register,
)
from apps.runs.models import DRIFT_DETECTED, TERMINAL_STATES, Approval, ApprovalStatus, Run, RunKind, RunState

SOURCE = "Terraform runs (apps/runs)"
# Runs that change infrastructure; drift checks only plan (they end discarded) and have their own KPI.
CHANGING_KINDS = [RunKind.APPLY, RunKind.DESTROY]
# What Terraform itself decided: applied, or failed / errored. Cancelled, rejected and discarded are a person's
# (or a lapsed approval's) choice, not a Terraform outcome.
SETTLED_STATES = [RunState.APPLIED, RunState.FAILED, RunState.ERRORED]
FAILED_STATES = frozenset({RunState.FAILED, RunState.ERRORED})

NO_FINISHED = "no data yet: no apply or destroy run was applied or failed in this period"
NO_STARTS = "no data yet: no Terraform run started in this period"
NO_CHECKS = "no data yet: no drift check finished in this period"
NO_READY = "no data yet: no workspace became ready for the first time in this period"
NO_DECISIONS = "no data yet: no approval request was approved or rejected in this period"
NO_RECOVERIES = "no data yet: no failed workspace was restored by a successful run in this period"


def _in(period: Period, field: str) -> Q:
    return Q(**{f"{field}__gte": period.start, f"{field}__lt": period.end})


# The split of the run KPIs: the template a run's workspace was launched from.
TEMPLATE = "template_version__template__slug"


@register
class RunSuccessRate(ShareKpi):
    """Applied / (applied + failed + errored) apply and destroy runs that finished in the period, in percent. A
    plan with no changes that ends applied is a success. Cancelled, rejected and discarded runs are left out (a
    person stopped them, or their approval lapsed: Terraform did not fail); drift checks only plan and are
    counted by the drift KPI."""

    key = "run_success_rate"
    name = "Terraform run success rate"
    area = Area.DELIVERY
    unit = Unit.PERCENT
    source = SOURCE
    target = Target(green=95, amber=90, note="seed: deployment success 95-99%")
    dimensions = ("team", "template")
    split = "template"
    no_data = NO_FINISHED

    def partials(self, *, period: Period, team_ids: list[int] | None) -> Iterable[PartialRow]:
        finished = Run.objects.filter(_in(period, "finished_at"), kind__in=CHANGING_KINDS, state__in=SETTLED_STATES)
        return self.count_records(finished, Q(state=RunState.APPLIED), period=period, when="finished_at",
                                  split_field=TEMPLATE, team_ids=team_ids)  # fmt: skip


class _RunQueue(SamplesKpi):
    """Base of the run queue-time percentiles: minutes from a run's enqueueing to Terraform's start (planning),
    for runs of every kind started in the period; time held by a change freeze or behind the workspace's
    previous run counts, as the requester waited it."""

    kept_as = "run_queue"  # P50 and P95 keep the same samples: one set of kept days

    area = Area.DELIVERY
    unit = Unit.MINUTES
    source = SOURCE
    dimensions = ("team", "template")
    split = "template"
    no_data = NO_STARTS

    def samples(self, *, period: Period, team_ids: list[int] | None) -> Iterable[Sample]:
        runs = of_teams(Run.objects.filter(_in(period, "started_at")), team_ids)
        for team_id, template, queued, started in runs.values_list("team_id", TEMPLATE, "queued_at", "started_at"):
            yield team_id, template, started, max(0.0, (started - queued).total_seconds() / 60)


@register
class RunQueueP50(_RunQueue):
    """Median minutes from a Terraform run's enqueueing to its start (planning), over the runs of every kind
    started in the period; time held by a change freeze or behind the workspace's previous run counts."""

    key = "run_queue_p50"
    name = "Terraform run queue time P50"
    quantile = 50
    target = Target(green=15, amber=30, better=Better.LOWER, note="seed: queue time P50 < 15 min")


@register
class RunQueueP95(_RunQueue):
    """95th percentile of minutes from a Terraform run's enqueueing to its start (planning), over the runs of
    every kind started in the period; time held by a change freeze or behind the workspace's previous run
    counts."""

    key = "run_queue_p95"
    name = "Terraform run queue time P95"
    quantile = 95
    target = Target(green=60, amber=90, better=Better.LOWER, note="seed: queue time P95 < 60 min")


class _ProvisioningLead(SamplesKpi):
    """Base of the provisioning lead-time percentiles: minutes from a workspace's launch (submitted) to its first
    applied apply run (ready), for workspaces first ready in the period."""

    kept_as = "provisioning_lead"  # P50 and P95 keep the same samples: one set of kept days

    area = Area.DELIVERY
    unit = Unit.MINUTES
    source = "workspaces and their Terraform runs (apps/runs)"
    dimensions = ("team", "template")
    split = "template"
    no_data = NO_READY

    def samples(self, *, period: Period, team_ids: list[int] | None) -> Iterable[Sample]:
        # One grouped query: each workspace's first applied apply run, kept when it falls in the period (HAVING).
        firsts = (
            of_teams(Run.objects.filter(kind=RunKind.APPLY, state=RunState.APPLIED), team_ids)
            .values("workspace_id", "team_id", "workspace__created_at", "workspace__template_version__template__slug")
            .annotate(ready=Min("finished_at"))
            .filter(_in(period, "ready"))
        )
        for row in firsts:
            minutes = max(0.0, (row["ready"] - row["workspace__created_at"]).total_seconds() / 60)
            yield row["team_id"], row["workspace__template_version__template__slug"], row["ready"], minutes


@register
class ProvisioningLeadP50(_ProvisioningLead):
    """Median minutes from a workspace's launch to its first successful apply (ready), over the workspaces that
    became ready for the first time in the period; a first apply that failed and was retried counts from the
    launch. Workspaces still provisioning are not counted until they are ready."""

    key = "provisioning_lead_p50"
    name = "Workspace provisioning lead time P50"
    quantile = 50


@register
class ProvisioningLeadP95(_ProvisioningLead):
    """95th percentile of minutes from a workspace's launch to its first successful apply (ready), over the
    workspaces that became ready for the first time in the period; a first apply that failed and was retried
    counts from the launch. Workspaces still provisioning are not counted until they are ready."""

    key = "provisioning_lead_p95"
    name = "Workspace provisioning lead time P95"
    quantile = 95


@register
class DriftCount(SumsKpi):
    """Drift detections: drift checks (scheduled or asked for) that finished in the period and found the real
    infrastructure no longer matching the Terraform state, each of which marks its workspace drifted; fewer is
    better. A check that failed to plan is not a detection; with no drift check finished at all there is no
    number (zero would claim a clean bill of health nobody checked)."""

    key = "drift_count"
    name = "Drift detections"
    area = Area.GOVERNANCE
    unit = Unit.COUNT
    source = "drift-check runs (apps/runs)"
    target = None  # the seed measures drift detection coverage, not a number of detections
    dimensions = ("team", "template")
    split = "template"

    def partials(self, *, period: Period, team_ids: list[int] | None) -> Iterable[PartialRow]:
        checks = Run.objects.filter(_in(period, "finished_at"), kind=RunKind.DRIFT_CHECK, state__in=TERMINAL_STATES)
        found = Q(state=RunState.DISCARDED, state_reason__startswith=DRIFT_DETECTED)
        return self.grouped(checks, period=period, when="finished_at", split_field=TEMPLATE, team_ids=team_ids,
                            checks=Count("pk"), found=Count("pk", filter=found))  # fmt: skip

    def finish(self, merged: list[float] | None, *, period: Period) -> Measurement:
        if not merged or not merged[0]:
            return Measurement.none(NO_CHECKS)
        checks, found = merged
        return Measurement(value=found, sample=int(checks))


class _ApprovalCycle(SamplesKpi):
    """Base of the approval cycle-time percentiles: hours from a run's approval request to its decision
    (approved or rejected), for requests decided in the period."""

    kept_as = "access_request_cycle"  # P50 and P95 keep the same samples: one set of kept days

    area = Area.GOVERNANCE
    unit = Unit.HOURS
    source = "run approvals (apps/runs)"
    dimensions = ("team",)
    no_data = NO_DECISIONS
    target = None  # the seed asks to cut it by 30%, a relative goal with no absolute bound

    def samples(self, *, period: Period, team_ids: list[int] | None) -> Iterable[Sample]:
        decisions = [ApprovalStatus.APPROVED, ApprovalStatus.REJECTED]
        decided = of_teams(Approval.objects.filter(_in(period, "decided_at"), status__in=decisions), team_ids)
        for team_id, requested, decided_at in decided.values_list("team_id", "created_at", "decided_at"):
            yield team_id, "", decided_at, max(0.0, (decided_at - requested).total_seconds() / 3600)


@register
class AccessRequestCycleP50(_ApprovalCycle):
    """Median hours from a run's approval request to a manager's decision (approved or rejected), over the
    requests decided in the period. Requests that expired undecided, or are still pending, are not counted."""

    key = "access_request_cycle_p50"
    name = "Approval request cycle time P50"
    quantile = 50


@register
class AccessRequestCycleP95(_ApprovalCycle):
    """95th percentile of hours from a run's approval request to a manager's decision (approved or rejected),
    over the requests decided in the period. Requests that expired undecided, or are still pending, are not
    counted."""

    key = "access_request_cycle_p95"
    name = "Approval request cycle time P95"
    quantile = 95


@register
class RunMttr(SamplesKpi):
    """Mean hours to restore a failed workspace: from the first failed (or errored) apply or destroy run after
    its last success to its next applied apply or destroy run, over the restorations completed in the period.
    A workspace still failed at the period's end, or given up (forgotten, force-deleted), is not counted;
    cancelled, rejected and discarded runs in between neither fail nor restore it."""

    key = "run_mttr"
    name = "Workspace time to restore (MTTR)"
    area = Area.DELIVERY
    unit = Unit.HOURS
    source = SOURCE
    target = Target(green=4, amber=8, better=Better.LOWER, note="seed: MTTR Sev-2 < 4 h")
    dimensions = ("team", "template")
    split = "template"
    no_data = NO_RECOVERIES  # the mean: `quantile` stays None

    def samples(self, *, period: Period, team_ids: list[int] | None) -> Iterable[Sample]:
        settled = Run.objects.filter(kind__in=CHANGING_KINDS, state__in=SETTLED_STATES, finished_at__lt=period.end)
        restored_here = settled.filter(state=RunState.APPLIED, finished_at__gte=period.start).values("workspace_id")
        # One query: the settled history (up to the period's end) of the workspaces with a success in the period.
        history = (
            of_teams(settled.filter(workspace_id__in=Subquery(restored_here)), team_ids)
            .order_by("workspace_id", "finished_at", "pk")
            .values_list("workspace_id", "team_id", TEMPLATE, "state", "finished_at")
        )
        workspace, failed_since = None, None
        for workspace_id, team_id, template, state, finished in history:
            if workspace_id != workspace:
                workspace, failed_since = workspace_id, None
            if state in FAILED_STATES:
                failed_since = failed_since or finished
            elif failed_since is not None:
                if finished >= period.start:
                    yield team_id, template, finished, (finished - failed_since).total_seconds() / 3600
                failed_since = None
