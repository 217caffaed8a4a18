"""The Terraform run and GPU cluster KPIs on PostgreSQL with known histories: each one's exact value for March
2026, another team's records kept out of a team's number, the period's edges, records still in flight, the
reason when there is nothing to measure, `by_team` agreeing with `measure`, and the audit trail the cluster
KPIs read as the real transitions write it."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from apps.accounts.models import Team
from apps.clusters.models import Cluster, ClusterState
from apps.clusters.services.states import cluster_transition
from apps.dashboards.registry import Measurement, Period, Scope, get_kpi
from apps.runs.models import DRIFT_DETECTED, Approval, ApprovalStatus, Run, RunKind, RunState, Workspace
from apps.runs.services.execution import _finish_drift_check
from apps.runs.terraform import PlanSummary
from tests.factories import AuditEventFactory, ClusterFactory, RunFactory, WorkspaceFactory

pytestmark = pytest.mark.django_db

PERIOD = Period(
    start=datetime.fromisoformat("2026-03-01T00:00:00+00:00"), end=datetime.fromisoformat("2026-04-01T00:00:00+00:00")
)
KEYS = [
    "run_success_rate", "run_queue_p50", "run_queue_p95", "provisioning_lead_p50", "provisioning_lead_p95",
    "drift_count", "access_request_cycle_p50", "access_request_cycle_p95", "run_mttr",
    "cluster_provisioning_success", "cluster_lead_p50", "cluster_lead_p95",
]  # fmt: skip


def at(text: str) -> datetime:
    return datetime.fromisoformat(f"2026-{text}+00:00")


def workspace(team: Team, created: str = "01-01T00:00:00") -> Workspace:
    ws = WorkspaceFactory(team=team)
    Workspace.objects.filter(pk=ws.pk).update(created_at=at(created))
    return ws


def run(
    ws: Workspace,
    state: str,
    *,
    kind: str = RunKind.APPLY,
    finished: str | None = None,
    queued: str | None = None,
    started: str | None = None,
    reason: str = "",
) -> Run:
    """A run with the times given (the rest an hour apart, before `finished`)."""
    end = at(finished) if finished else None
    start = at(started) if started else (end - timedelta(minutes=30) if end else None)
    enqueued = at(queued) if queued else (start or end or at("03-15T00:00:00")) - timedelta(minutes=30)
    made = RunFactory(workspace=ws, kind=kind, state=state, state_reason=reason, started_at=start, finished_at=end)
    Run.objects.filter(pk=made.pk).update(queued_at=enqueued, created_at=enqueued)
    return made


def scope(*teams: Team) -> Scope:
    return Scope(teams=frozenset(team.pk for team in teams))


def measure(key: str, *teams: Team, period: Period = PERIOD) -> Measurement:
    kpi = get_kpi(key)
    assert kpi is not None
    return kpi.measure(period=period, scope=scope(*teams) if teams else Scope(teams=None))


def assert_by_team_agrees(key: str, *teams: Team) -> None:
    """`by_team` answers every team in one query, and each team's number is `measure`'s for that team."""
    kpi = get_kpi(key)
    assert kpi is not None
    with CaptureQueriesContext(connection) as queries:
        grouped = kpi.by_team(period=PERIOD, team_ids=[team.pk for team in teams])
    assert len(queries) == 1  # every team at once, however many
    assert grouped == {team.pk: measure(key, team) for team in teams}


@pytest.mark.parametrize("key", KEYS)
def test_each_kpi_is_registered_with_its_formula(key: str) -> None:
    kpi = get_kpi(key)
    assert kpi is not None
    assert kpi.formula
    assert kpi.source
    assert kpi.dimensions[0] == "team"


@pytest.mark.parametrize("key", KEYS)
def test_without_records_each_kpi_says_why_not_a_number(key: str, vision: Team, nlp: Team) -> None:
    measured = measure(key, vision)
    assert measured.value is None
    assert measured.no_data.startswith("no data yet: ")
    kpi = get_kpi(key)
    assert kpi is not None
    assert kpi.by_team(period=PERIOD, team_ids=[vision.pk, nlp.pk])[nlp.pk] == measured


def test_run_success_rate_counts_applied_and_failed_changes_only(vision: Team, nlp: Team) -> None:
    ws, other = workspace(vision), workspace(nlp)
    for day in ("03-02", "03-10", "03-31"):
        run(ws, RunState.APPLIED, finished=f"{day}T12:00:00")
    run(ws, RunState.APPLIED, kind=RunKind.DESTROY, finished="03-12T12:00:00")
    run(ws, RunState.FAILED, finished="03-05T12:00:00")
    # Left out: a person's choice, a drift check, still in flight, and the period's edges.
    run(ws, RunState.CANCELLED, finished="03-06T12:00:00")
    run(ws, RunState.REJECTED, finished="03-06T13:00:00")
    run(ws, RunState.DISCARDED, kind=RunKind.DRIFT_CHECK, finished="03-06T14:00:00")
    run(ws, RunState.ERRORED, kind=RunKind.DRIFT_CHECK, finished="03-06T15:00:00")
    run(ws, RunState.APPLYING, started="03-31T23:00:00")
    run(ws, RunState.FAILED, finished="02-28T23:59:59")
    run(ws, RunState.FAILED, finished="04-01T00:00:00")
    run(other, RunState.ERRORED, finished="03-20T12:00:00")

    assert (measure("run_success_rate", vision).value, measure("run_success_rate", vision).sample) == (80.0, 5)
    assert measure("run_success_rate", nlp).value == 0.0
    assert (measure("run_success_rate").value, measure("run_success_rate").sample) == (pytest.approx(200 / 3), 6)
    assert_by_team_agrees("run_success_rate", vision, nlp)


def test_run_queue_time_spans_enqueue_to_start_for_runs_started_in_the_period(vision: Team, nlp: Team) -> None:
    ws, other = workspace(vision), workspace(nlp)
    for minutes, kind in ((2, RunKind.APPLY), (4, RunKind.DESTROY), (6, RunKind.DRIFT_CHECK), (8, RunKind.APPLY)):
        run(ws, RunState.APPLIED, kind=kind, queued="03-10T10:00:00", started=f"03-10T10:{minutes:02d}:00")
    run(ws, RunState.PLANNING, queued="03-31T22:00:00", started="03-31T23:40:00")  # in flight: it started
    run(ws, RunState.QUEUED, queued="03-20T00:00:00")  # not started: no queue time yet
    run(ws, RunState.APPLIED, queued="02-28T23:00:00", started="02-28T23:59:59")
    run(ws, RunState.APPLIED, queued="03-31T23:00:00", started="04-01T00:00:00")
    run(other, RunState.APPLIED, queued="03-10T10:00:00", started="03-10T10:30:00")

    assert measure("run_queue_p50", vision).value == 6.0
    assert measure("run_queue_p95", vision).value == pytest.approx(81.6)  # 8 + 0.8 x (100 - 8)
    assert measure("run_queue_p95", vision).sample == 5
    assert measure("run_queue_p50", nlp).value == 30.0
    assert measure("run_queue_p50").value == 7.0  # 2, 4, 6, 8, 30, 100
    assert measure("run_queue_p95").value == pytest.approx(82.5)  # 30 + 0.75 x 70
    assert_by_team_agrees("run_queue_p50", vision, nlp)
    assert_by_team_agrees("run_queue_p95", vision, nlp)


def test_provisioning_lead_time_runs_from_launch_to_the_first_successful_apply(vision: Team, nlp: Team) -> None:
    retried = workspace(vision, "03-10T10:00:00")
    run(retried, RunState.FAILED, finished="03-10T10:20:00")
    run(retried, RunState.APPLIED, finished="03-10T11:00:00")  # 60 min from launch, failure included
    run(retried, RunState.APPLIED, finished="03-20T11:00:00")  # ready again later: not a new lead time
    late_night = workspace(vision, "02-28T23:00:00")
    run(late_night, RunState.APPLIED, finished="03-01T00:30:00")  # 90 min, launched before the period
    earlier = workspace(vision, "02-20T00:00:00")
    run(earlier, RunState.APPLIED, finished="02-20T00:10:00")  # first ready in February
    run(earlier, RunState.APPLIED, finished="03-05T00:00:00")
    pending = workspace(vision, "03-31T23:00:00")
    run(pending, RunState.APPLYING, started="03-31T23:10:00")  # still provisioning
    edge = workspace(vision, "03-31T23:00:00")
    run(edge, RunState.APPLIED, finished="04-01T00:00:00")
    other = workspace(nlp, "03-05T00:00:00")
    run(other, RunState.APPLIED, finished="03-05T00:10:00")

    assert (measure("provisioning_lead_p50", vision).value, measure("provisioning_lead_p50", vision).sample) == (
        75.0, 2
    )  # fmt: skip
    assert measure("provisioning_lead_p95", vision).value == pytest.approx(88.5)  # 60 + 0.95 x 30
    assert measure("provisioning_lead_p50", nlp).value == 10.0
    assert measure("provisioning_lead_p50").value == 60.0  # 10, 60, 90
    assert_by_team_agrees("provisioning_lead_p50", vision, nlp)
    assert_by_team_agrees("provisioning_lead_p95", vision, nlp)


def test_drift_count_counts_checks_that_found_drift(vision: Team, nlp: Team) -> None:
    ws = workspace(vision)
    found = f"{DRIFT_DETECTED}: 0 to add, 1 to change, 0 to destroy."
    for day in ("03-03", "03-17"):
        run(ws, RunState.DISCARDED, kind=RunKind.DRIFT_CHECK, finished=f"{day}T06:00:00", reason=found)
    run(ws, RunState.DISCARDED, kind=RunKind.DRIFT_CHECK, finished="03-10T06:00:00", reason="No drift: ...")
    run(ws, RunState.FAILED, kind=RunKind.DRIFT_CHECK, finished="03-11T06:00:00", reason="Plan failed.")
    run(ws, RunState.DISCARDED, kind=RunKind.DRIFT_CHECK, finished="02-28T23:59:59", reason=found)
    run(ws, RunState.DISCARDED, kind=RunKind.DRIFT_CHECK, finished="04-01T00:00:00", reason=found)
    run(ws, RunState.PLANNING, kind=RunKind.DRIFT_CHECK, started="03-31T23:59:00")  # its verdict is to come
    run(ws, RunState.DISCARDED, finished="03-12T06:00:00", reason=found)  # an apply's discarded plan is no check

    counted = measure("drift_count", vision)
    assert (counted.value, counted.sample) == (2.0, 4)  # 2 detections out of 4 checks
    assert measure("drift_count", nlp).no_data == "no data yet: no drift check finished in this period"
    assert measure("drift_count").value == 2.0
    run(workspace(nlp), RunState.DISCARDED, kind=RunKind.DRIFT_CHECK, finished="03-10T06:00:00", reason="No drift")
    assert measure("drift_count", nlp).value == 0.0  # checked and clean: a real zero
    assert_by_team_agrees("drift_count", vision, nlp)


def test_drift_count_reads_the_verdict_a_real_drift_check_records(vision: Team) -> None:
    drifted = RunFactory(workspace=workspace(vision), kind=RunKind.DRIFT_CHECK, state=RunState.PLANNED)
    clean = RunFactory(workspace=workspace(vision), kind=RunKind.DRIFT_CHECK, state=RunState.PLANNED)
    _finish_drift_check(drifted, True, PlanSummary(change=1))
    _finish_drift_check(clean, False, PlanSummary())
    today = Period.last_days(1, now=timezone.now())
    assert (measure("drift_count", vision, period=today).value, measure("drift_count", vision, period=today).sample) == (
        1.0, 2
    )  # fmt: skip


def approval(team: Team, status: str, *, requested: str, decided: str | None, mark: Any) -> Approval:
    waiting: Run = RunFactory(workspace=workspace(team), state=RunState.AWAITING_APPROVAL)
    made = Approval.objects.create(
        run=waiting, team=team, status=status,
        why_needed="Always.", expires_at=at(requested) + timedelta(days=3), decided_at=at(decided) if decided else None,
        decided_by=mark if decided else None,
    )  # fmt: skip
    Approval.objects.filter(pk=made.pk).update(created_at=at(requested))
    return made


def test_access_request_cycle_time_runs_from_request_to_decision(vision: Team, nlp: Team, mark: Any) -> None:
    approval(vision, ApprovalStatus.APPROVED, requested="03-10T09:00:00", decided="03-10T10:00:00", mark=mark)
    approval(vision, ApprovalStatus.REJECTED, requested="03-10T09:00:00", decided="03-10T12:00:00", mark=mark)
    approval(vision, ApprovalStatus.APPROVED, requested="02-28T12:00:00", decided="03-01T12:00:00", mark=mark)
    approval(vision, ApprovalStatus.PENDING, requested="03-30T09:00:00", decided=None, mark=mark)  # undecided
    approval(vision, ApprovalStatus.EXPIRED, requested="03-01T09:00:00", decided=None, mark=mark)  # lapsed
    approval(vision, ApprovalStatus.APPROVED, requested="02-27T09:00:00", decided="02-28T23:59:59", mark=mark)
    approval(vision, ApprovalStatus.APPROVED, requested="03-31T09:00:00", decided="04-01T00:00:00", mark=mark)
    approval(nlp, ApprovalStatus.APPROVED, requested="03-05T09:00:00", decided="03-05T11:00:00", mark=mark)

    p50 = measure("access_request_cycle_p50", vision)
    assert (p50.value, p50.sample) == (3.0, 3)  # 1, 3 and 24 hours
    assert measure("access_request_cycle_p95", vision).value == pytest.approx(21.9)  # 3 + 0.9 x 21
    assert measure("access_request_cycle_p50", nlp).value == 2.0
    assert measure("access_request_cycle_p50").value == 2.5  # 1, 2, 3, 24
    assert_by_team_agrees("access_request_cycle_p50", vision, nlp)
    assert_by_team_agrees("access_request_cycle_p95", vision, nlp)


def test_mttr_runs_from_the_first_failure_to_the_next_success_of_the_workspace(vision: Team, nlp: Team) -> None:
    ws = workspace(vision)
    run(ws, RunState.APPLIED, finished="02-01T00:00:00")
    run(ws, RunState.FAILED, finished="02-28T20:00:00")  # the failure starts before the period...
    run(ws, RunState.ERRORED, finished="03-01T01:00:00")  # ...a second failure does not restart the clock
    run(ws, RunState.CANCELLED, finished="03-01T02:00:00")  # neither fails nor restores
    run(ws, RunState.APPLIED, finished="03-01T04:00:00")  # restored after 8 h
    run(ws, RunState.FAILED, finished="03-10T00:00:00")
    run(ws, RunState.APPLIED, finished="03-10T02:00:00")  # 2 h
    run(ws, RunState.APPLIED, finished="03-11T02:00:00")  # a success without a failure is no restoration
    run(ws, RunState.FAILED, finished="03-31T23:00:00")
    run(ws, RunState.APPLIED, finished="04-01T01:00:00")  # restored after the period: not counted yet
    destroyed = workspace(vision)
    run(destroyed, RunState.FAILED, finished="03-05T00:00:00")
    run(destroyed, RunState.DISCARDED, kind=RunKind.DRIFT_CHECK, finished="03-05T01:00:00")
    run(destroyed, RunState.APPLIED, kind=RunKind.DESTROY, finished="03-05T05:00:00")  # 5 h, cleanly destroyed
    stuck = workspace(vision)
    run(stuck, RunState.FAILED, finished="03-20T00:00:00")  # still failed at the end: not a restoration
    earlier = workspace(vision)
    run(earlier, RunState.FAILED, finished="01-10T00:00:00")
    run(earlier, RunState.APPLIED, finished="02-10T00:00:00")  # restored in February
    other = workspace(nlp)
    run(other, RunState.FAILED, finished="03-02T00:00:00")
    run(other, RunState.APPLIED, finished="03-02T01:00:00")

    mttr = measure("run_mttr", vision)
    assert (mttr.value, mttr.sample) == (5.0, 3)  # (8 + 2 + 5) / 3
    assert measure("run_mttr", nlp).value == 1.0
    assert (measure("run_mttr").value, measure("run_mttr").sample) == (4.0, 4)
    assert_by_team_agrees("run_mttr", vision, nlp)


def cluster(team: Team, requested: str) -> Cluster:
    made = ClusterFactory(team=team)
    Cluster.objects.filter(pk=made.pk).update(created_at=at(requested))
    return made


def moved(made: Cluster, to: str, when: str, came_from: str = ClusterState.PROVISIONING) -> None:
    """The audit event `cluster_transition` writes, at a chosen time."""
    AuditEventFactory(team=made.team, verb=f"cluster.{to}", target_type="clusters.cluster", target_id=str(made.pk),
                      created_at=at(when), data={"from": came_from, "reason": ""})  # fmt: skip


@pytest.fixture
def clusters(vision: Team, nlp: Team) -> None:
    """vision: c1 runs (12 min after its request), is stopped and restarted; c2 fails provisioning; c3 runs (30
    min) and breaks later; c6 first ran in February and restarts in March; nlp: c5 fails while requested, c7 runs
    (60 min)."""
    c1 = cluster(vision, "03-05T00:00:00")
    moved(c1, ClusterState.RUNNING, "03-05T00:12:00")
    moved(c1, ClusterState.STOPPED, "03-10T00:00:00", came_from=ClusterState.STOPPING)
    moved(c1, ClusterState.RUNNING, "03-20T00:05:00")  # a restart: another provisioning, not another lead time
    moved(cluster(vision, "03-06T00:00:00"), ClusterState.FAILED, "03-06T00:20:00")
    c3 = cluster(vision, "03-07T00:00:00")
    moved(c3, ClusterState.RUNNING, "03-07T00:30:00")
    moved(c3, ClusterState.FAILED, "03-25T00:00:00", came_from=ClusterState.RUNNING)  # it did provision
    c6 = cluster(vision, "02-28T23:00:00")
    moved(c6, ClusterState.RUNNING, "02-28T23:30:00")
    moved(c6, ClusterState.RUNNING, "04-01T00:00:00")
    cluster(vision, "03-31T23:00:00")  # still requested
    moved(cluster(nlp, "03-03T00:00:00"), ClusterState.FAILED, "03-03T00:01:00", came_from=ClusterState.REQUESTED)
    moved(cluster(nlp, "03-10T00:00:00"), ClusterState.RUNNING, "03-10T01:00:00")


def test_cluster_provisioning_success_counts_provisionings_that_ended(clusters: None, vision: Team, nlp: Team) -> None:
    rate = measure("cluster_provisioning_success", vision)
    assert (rate.value, rate.sample) == (75.0, 4)  # c1 twice and c3 ran, c2 failed
    assert measure("cluster_provisioning_success", nlp).value == 50.0
    platform = measure("cluster_provisioning_success")
    assert (platform.value, platform.sample) == (pytest.approx(400 / 6), 6)
    assert_by_team_agrees("cluster_provisioning_success", vision, nlp)


def test_cluster_lead_time_runs_from_request_to_the_first_running(clusters: None, vision: Team, nlp: Team) -> None:
    lead = measure("cluster_lead_p50", vision)
    assert (lead.value, lead.sample) == (21.0, 2)  # 12 and 30 minutes
    assert measure("cluster_lead_p95", vision).value == pytest.approx(29.1)  # 12 + 0.95 x 18
    assert measure("cluster_lead_p50", nlp).value == 60.0
    assert measure("cluster_lead_p50").value == 30.0
    assert_by_team_agrees("cluster_lead_p50", vision, nlp)
    assert_by_team_agrees("cluster_lead_p95", vision, nlp)


def test_cluster_kpis_read_the_audit_trail_the_real_transitions_write(vision: Team) -> None:
    ran, broke = ClusterFactory(team=vision), ClusterFactory(team=vision)
    for made in (ran, broke):
        cluster_transition(cluster=made, to=ClusterState.PROVISIONING, reason="Launching nodes.")
    cluster_transition(cluster=ran, to=ClusterState.RUNNING, reason="All nodes are running.")
    cluster_transition(cluster=broke, to=ClusterState.FAILED, reason="Provisioning failed: no capacity.")
    today = Period.last_days(1, now=timezone.now())
    assert measure("cluster_provisioning_success", vision, period=today).value == 50.0
    assert measure("cluster_lead_p50", vision, period=today).sample == 1
