"""The home page by role (issue 16, acceptance 3): a member's own work and what waits on them, a manager's
approvals (and the navigation's badge), a platform admin's platform health, empty states that link onwards, and
a bounded query count whatever the user holds."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from apps.accounts.models import Role, Team
from apps.clusters.models import ClusterState
from apps.costs.models import CostSource
from apps.costs.services.rollups import rebuild_days
from apps.deployments.models import Deployment, DeploymentState
from apps.ops.services import record_worker_heartbeat
from apps.runs.models import Approval, RunKind, RunState, WorkspaceStatus
from apps.runs.services import set_change_freeze
from apps.training.models import JobState
from tests.factories import (
    ClusterFactory,
    CostLineItemFactory,
    MembershipFactory,
    RunFactory,
    TeamFactory,
    TrainingJobFactory,
    UserFactory,
    WorkspaceFactory,
    deployment_for,
    member,
)

pytestmark = pytest.mark.django_db


def _home(client: Client, user: Any) -> str:
    client.force_login(user)
    response = client.get(reverse("home"))
    assert response.status_code == 200
    return response.content.decode()


def _awaiting(workspace: Any, requester: Any) -> Any:
    run: Any = RunFactory(workspace=workspace, created_by=requester, state=RunState.AWAITING_APPROVAL,
                     approval_reason="over 1.00 USD / hour")  # fmt: skip
    Approval.objects.create(run=run, team=workspace.team, why_needed="Estimate over the team's threshold",
                            expires_at=timezone.now() + timedelta(hours=24))  # fmt: skip
    return run


def test_a_member_sees_their_own_work_and_not_a_teammates_or_another_teams(
    client: Client, alice: Any, bob: Any, vision: Team, nlp: Team
) -> None:
    now = timezone.now()
    carol = member(vision, username="carol")
    ready = WorkspaceFactory(team=vision, created_by=alice, name="resnet", status=WorkspaceStatus.READY,
                             expires_at=now + timedelta(hours=5))  # fmt: skip
    later = WorkspaceFactory(team=vision, created_by=alice, name="later", status=WorkspaceStatus.READY,
                             expires_at=now + timedelta(days=5))  # fmt: skip
    drifted = WorkspaceFactory(team=vision, created_by=alice, name="drifty", status=WorkspaceStatus.DRIFTED)
    gone = WorkspaceFactory(team=vision, created_by=alice, name="gone", status=WorkspaceStatus.DESTROYED)
    in_flight = RunFactory(workspace=ready, state=RunState.APPLYING)
    done = RunFactory(workspace=ready, state=RunState.APPLIED)
    waiting = _awaiting(later, alice)
    cluster = ClusterFactory(team=vision, owner=alice, name="gpus", state=ClusterState.RUNNING,
                             running_since=now - timedelta(minutes=50), idle_warned_at=now - timedelta(minutes=1))  # fmt: skip
    ended = ClusterFactory(team=vision, owner=alice, name="old", state=ClusterState.TERMINATED)
    teammates = WorkspaceFactory(team=vision, created_by=carol, name="carols", status=WorkspaceStatus.READY,
                                 expires_at=now + timedelta(hours=1))  # fmt: skip
    bobs = WorkspaceFactory(team=nlp, created_by=bob, name="bobs", status=WorkspaceStatus.READY)
    bobs_cluster = ClusterFactory(team=nlp, owner=bob, name="bobgpus", state=ClusterState.RUNNING)

    page = _home(client, alice)

    assert 'data-testid="home-mine"' in page
    for shown in (f"my-workspace-{ready.pk}", f"my-workspace-{later.pk}", f"my-workspace-{drifted.pk}",
                  f"my-run-{in_flight.pk}", f"my-run-{waiting.pk}", f"my-cluster-{cluster.pk}",
                  f"expiring-workspace-{ready.pk}", f"expiring-cluster-{cluster.pk}",
                  f"waiting-run-{waiting.pk}", f"waiting-workspace-{drifted.pk}"):  # fmt: skip
        assert f'data-testid="{shown}"' in page, shown
    for hidden in (f"my-workspace-{gone.pk}", f"my-run-{done.pk}", f"my-cluster-{ended.pk}",
                   f"expiring-workspace-{later.pk}", f"my-workspace-{teammates.pk}",
                   f"expiring-workspace-{teammates.pk}", f"my-workspace-{bobs.pk}", f"my-cluster-{bobs_cluster.pk}"):  # fmt: skip
        assert f'data-testid="{hidden}"' not in page, hidden
    assert "idle auto-stop in" in page
    assert 'data-testid="home-approvals"' not in page  # a member approves nothing
    assert 'data-testid="nav-badge"' not in page
    assert 'data-testid="home-health"' not in page
    assert 'data-testid="home-kpis"' not in page


def test_a_members_spend_this_month_counts_only_their_own(client: Client, alice: Any, bob: Any, vision: Team,
                                                          nlp: Team) -> None:  # fmt: skip
    now = timezone.now().replace(minute=0, second=0, microsecond=0)
    this_month = now.replace(day=1, hour=0)
    last_month = this_month - timedelta(hours=1)
    carol = member(vision, username="carol")
    for team, owner, start, amount in (
        (vision, alice, this_month, "12.50"),
        (vision, alice, now, "0.75"),
        (vision, alice, last_month, "99.00"),  # last month
        (vision, carol, now, "40.00"),  # a teammate's
        (nlp, bob, now, "7.00"),  # another team's
    ):
        CostLineItemFactory(source=CostSource.METERING, team=team, user=owner, usage_start=start,
                            net_cost=Decimal(amount))  # fmt: skip
    rebuild_days(source=CostSource.METERING, days={this_month.date(), now.date(), last_month.date()})

    page = _home(client, alice)
    assert '<p class="big" data-testid="spend-USD">13.25 USD</p>' in page


def test_empty_states_say_what_to_do_next_with_the_link(client: Client, alice: Any) -> None:
    page = _home(client, alice)
    assert f'No workspaces yet: <a href="{reverse("catalog:list")}">browse the catalog</a>' in page
    assert f'<a href="{reverse("clusters:create")}">request one</a>' in page
    assert 'data-testid="runs-empty"' in page
    assert 'data-testid="expiring-empty"' in page
    assert 'data-testid="waiting-empty"' in page
    assert '<p class="big" data-testid="spend-USD">0.00 USD</p>' in page
    loner = UserFactory(username="loner")
    page = _home(client, loner)
    assert 'data-testid="no-team"' in page
    assert 'data-testid="home-mine"' not in page


def test_a_manager_sees_the_approvals_waiting_for_them_and_the_badge_counts_them(
    client: Client, mark: Any, alice: Any, bob: Any, vision: Team, nlp: Team
) -> None:
    other = TeamFactory(slug="audio")
    outsider = member(other, username="olga")
    for_mark = [_awaiting(WorkspaceFactory(team=vision, created_by=alice), alice),
                _awaiting(WorkspaceFactory(team=nlp, created_by=bob), bob)]  # fmt: skip
    marks_own = _awaiting(WorkspaceFactory(team=vision, created_by=mark), mark)  # nobody approves their own
    elsewhere = _awaiting(WorkspaceFactory(team=other, created_by=outsider), outsider)
    decided = _awaiting(WorkspaceFactory(team=vision, created_by=alice), alice)
    Approval.objects.filter(run=decided).update(status="approved")

    page = _home(client, mark)

    assert 'data-testid="home-approvals"' in page
    for run in for_mark:
        assert f'data-testid="approval-{run.pk}"' in page
    for run in (marks_own, elsewhere, decided):
        assert f'data-testid="approval-{run.pk}"' not in page
    assert '<span class="badge badge-manager" data-testid="approvals-count">2</span>' in page
    assert (
        'data-testid="nav-badge" title="2 approvals waiting for you" aria-label="2 approvals waiting for you">2</span>'
        in page
    )
    # His own run waits on someone else: it is his work, in his own block, not an approval of his.
    assert f'data-testid="waiting-run-{marks_own.pk}"' in page
    assert 'data-testid="home-health"' not in page
    # The runs page lists the same approvals (one selector).
    approvals = client.get(reverse("runs:run-list")).content.decode().split('data-testid="pending-approvals"')[1]
    approvals = approvals.split("</section>")[0]
    assert [f">#{run.pk}</a>" in approvals for run in (*for_mark, marks_own, elsewhere)] == [True, True, False, False]


def _rollout_waiting(team: Team, requester: Any) -> Any:
    rollout = deployment_for(team, requester)
    Deployment.objects.filter(pk=rollout.pk).update(state=DeploymentState.AWAITING_APPROVAL)
    return rollout


def test_a_manager_sees_the_rollouts_waiting_for_their_go_next_to_the_runs_with_a_badge_on_deployments(
    client: Client, mark: Any, alice: Any, vision: Team
) -> None:
    run = _awaiting(WorkspaceFactory(team=vision, created_by=alice), alice)
    waiting = _rollout_waiting(vision, alice)
    marks_own = _rollout_waiting(vision, mark)  # another manager approves it
    outsider_team = TeamFactory(slug="audio")
    elsewhere = _rollout_waiting(outsider_team, member(outsider_team, username="olga"))
    done = deployment_for(vision, alice)  # succeeded: nothing to decide

    page = _home(client, mark)

    assert f'data-testid="approval-{run.pk}"' in page
    assert f'data-testid="rollout-{waiting.pk}"' in page
    assert f'href="/deployments/{waiting.pk}/"' in page
    for other in (marks_own, elsewhere, done):
        assert f'data-testid="rollout-{other.pk}"' not in page
    assert '<span class="badge badge-manager" data-testid="approvals-count">2</span>' in page  # 1 run + 1 rollout
    assert 'title="1 rollout waiting for your approval"' in page
    assert 'title="1 approval waiting for you"' in page
    assert 'data-testid="approvals-empty"' not in page
    listed = client.get(reverse("deployments:list"), {"state": "awaiting_approval"}).content.decode()  # the link
    assert f'href="/deployments/{waiting.pk}/">#{waiting.pk}</a>' in listed
    assert f'href="/deployments/{done.pk}/">#{done.pk}</a>' not in listed
    client.force_login(alice)  # a member decides nothing
    assert 'data-testid="home-rollouts"' not in client.get(reverse("home")).content.decode()


def test_a_manager_without_work_of_their_own_sees_no_member_blocks(client: Client, mark: Any, vision: Team) -> None:
    assert 'data-testid="home-mine"' not in _home(client, mark)


def test_a_manager_with_nothing_to_approve_gets_the_empty_state_and_no_badge(client: Client, mark: Any) -> None:
    page = _home(client, mark)
    assert 'data-testid="approvals-empty"' in page
    assert 'data-testid="nav-badge"' not in page


def test_a_platform_admin_sees_platform_health(client: Client, vision: Team) -> None:
    admin = UserFactory(username="root", is_superuser=True, is_staff=True)
    now = timezone.now()
    record_worker_heartbeat(hostname="celery@worker-1")
    workspace = WorkspaceFactory(team=vision)
    RunFactory(workspace=workspace, state=RunState.QUEUED)
    RunFactory(workspace=workspace, state=RunState.QUEUED, kind=RunKind.DESTROY)
    RunFactory(workspace=workspace, state=RunState.FAILED, finished_at=now)
    RunFactory(workspace=workspace, state=RunState.ERRORED, finished_at=now)
    RunFactory(workspace=workspace, state=RunState.FAILED, finished_at=now - timedelta(days=2))
    TrainingJobFactory(team=vision, state=JobState.QUEUED)
    set_change_freeze(actor=admin, active=True, reason="Quarter-end close")

    page = _home(client, admin)

    assert 'data-testid="home-health"' in page
    assert "celery@worker-1" in page
    assert '<span data-testid="health-queued-runs">2</span>' in page
    assert '<span data-testid="health-queued-jobs">1</span>' in page
    assert "Quarter-end close" in page
    assert 'data-testid="health-broker"' in page  # the test broker (Redis) answers
    failed = page.split('data-testid="health-failed"')[1].split("</div>")[1]
    assert '<div class="kpi-value">2' in failed
    assert 'data-testid="home-mine"' not in page  # in no team: nothing of their own


def test_a_user_with_several_roles_sees_every_block(client: Client, vision: Team, nlp: Team) -> None:
    everyone = UserFactory(username="polly", is_superuser=True, is_staff=True)
    MembershipFactory(user=everyone, team=vision, role=Role.MEMBER)
    MembershipFactory(user=everyone, team=nlp, role=Role.MANAGER)
    page = _home(client, everyone)
    for block in ("home-mine", "home-approvals", "home-health"):
        assert f'data-testid="{block}"' in page, block


def _fill(user: Any, team: Team, count: int) -> None:
    for n in range(count):
        workspace = WorkspaceFactory(team=team, created_by=user, status=WorkspaceStatus.READY,
                                     expires_at=timezone.now() + timedelta(hours=n + 1))  # fmt: skip
        RunFactory(workspace=workspace, state=RunState.PLANNING)
        ClusterFactory(team=team, owner=user, state=ClusterState.RUNNING, running_since=timezone.now(),
                       max_hours=1, idle_warned_at=timezone.now())  # fmt: skip
        requester = member(team)
        _awaiting(WorkspaceFactory(team=team, created_by=requester), requester)


def test_the_home_page_query_count_is_bounded_whatever_the_user_holds(
    client: Client, vision: Team, nlp: Team, django_assert_max_num_queries: Any
) -> None:
    everyone = UserFactory(username="polly", is_superuser=True, is_staff=True)
    MembershipFactory(user=everyone, team=vision, role=Role.MEMBER)
    MembershipFactory(user=everyone, team=nlp, role=Role.MANAGER)
    record_worker_heartbeat(hostname="celery@worker-1")
    _fill(everyone, vision, 2)
    _fill(everyone, nlp, 1)
    client.force_login(everyone)
    client.get(reverse("home"))  # warm: sessions, content types
    with django_assert_max_num_queries(30) as few:
        assert client.get(reverse("home")).status_code == 200
    _fill(everyone, vision, 6)
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert client.get(reverse("home")).status_code == 200
