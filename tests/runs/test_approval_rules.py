"""Who must approve: the template version's policy, tightened (never loosened) by the team's own rule."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from apps.accounts.models import Role, Team
from apps.audit.models import AuditEvent
from apps.catalog.models import ApprovalPolicy
from apps.runs.errors import NotAnApprover
from apps.runs.models import RunKind
from apps.runs.services import set_approval_rule
from apps.runs.services.execution import approval_reason
from tests.factories import RunFactory, TemplateVersionFactory, WorkspaceFactory, member

pytestmark = pytest.mark.django_db


def run_for(team: Team, *, policy: str = ApprovalPolicy.NEVER, hourly: str = "3.10", kind: str = RunKind.APPLY) -> Any:
    version = TemplateVersionFactory(approval_policy=policy, approval_threshold=Decimal("5.00"))
    workspace = WorkspaceFactory(team=team, template_version=version)
    return RunFactory(workspace=workspace, kind=kind, estimated_hourly_cost=Decimal(hourly))


@pytest.mark.parametrize(
    ("policy", "hourly", "needed"),
    [
        (ApprovalPolicy.NEVER, "100.00", False),
        (ApprovalPolicy.ALWAYS, "0.00", True),
        (ApprovalPolicy.COST_ABOVE, "4.99", False),
        (ApprovalPolicy.COST_ABOVE, "5.01", True),
    ],
)
def test_template_policy_decides_without_a_team_rule(vision: Team, policy: str, hourly: str, needed: bool) -> None:
    assert bool(approval_reason(run=run_for(vision, policy=policy, hourly=hourly))) is needed


def test_team_threshold_adds_approvals_the_template_would_skip(vision: Team) -> None:
    admin = member(vision, Role.ADMIN)
    set_approval_rule(actor=admin, team=vision, hourly_threshold=Decimal("1.00"), require_for_destroy=False)
    assert "Team rule" in approval_reason(run=run_for(vision, hourly="3.10"))
    assert approval_reason(run=run_for(vision, hourly="0.50")) == ""


def test_team_rule_can_require_approval_for_destroys(vision: Team) -> None:
    admin = member(vision, Role.ADMIN)
    assert approval_reason(run=run_for(vision, kind=RunKind.DESTROY)) == ""
    set_approval_rule(actor=admin, team=vision, hourly_threshold=None, require_for_destroy=True)
    assert "destroys" in approval_reason(run=run_for(vision, kind=RunKind.DESTROY))


def test_only_admins_set_a_teams_rule_and_it_is_audited(vision: Team, alice: Any, mark: Any) -> None:
    for user in (alice, mark):
        with pytest.raises(NotAnApprover):
            set_approval_rule(actor=user, team=vision, hourly_threshold=Decimal("1"), require_for_destroy=True)
    admin = member(vision, Role.ADMIN)
    set_approval_rule(actor=admin, team=vision, hourly_threshold=Decimal("2.50"), require_for_destroy=True)
    event = AuditEvent.objects.get(verb="approval_rule.updated")
    assert (event.actor, event.team, event.data["hourly_threshold"]) == (admin, vision, "2.50")


def test_approval_box_shows_the_teams_current_footprint(client: Any, vision: Team, mark: Any, alice: Any) -> None:
    from apps.runs.models import Approval, RunState, WorkspaceStatus

    WorkspaceFactory(team=vision, status=WorkspaceStatus.READY, estimated_hourly_cost=Decimal("2.00"))
    WorkspaceFactory(team=vision, status=WorkspaceStatus.DESTROYED, estimated_hourly_cost=Decimal("50.00"))
    run = run_for(vision, hourly="3.10")
    run.state = RunState.AWAITING_APPROVAL
    run.save()
    Approval.objects.create(run=run, team=vision, why_needed="Always.", expires_at=run.queued_at.replace(year=2100))
    client.force_login(mark)

    body = client.get(f"/runs/{run.pk}/").content.decode()

    assert "runs 1 live workspace at about 2.00 USD / hour; this run adds about 3.10 USD / hour" in body


# --- GPU quota impact in the approval box ---------------------------------------------------------------------

GPU_CLUSTER = {"cluster_name": "llm-train", "instance_type": "p4d.24xlarge", "node_count": 2, "region": "us-east-1"}


def gpu_run_awaiting_approval(team: Team, parameters: dict[str, Any], kind: str = RunKind.APPLY) -> Any:
    from apps.runs.models import Approval, RunState

    version = TemplateVersionFactory(approval_policy=ApprovalPolicy.ALWAYS)
    workspace = WorkspaceFactory(team=team, template_version=version, parameters=parameters)
    run: Any = RunFactory(
        workspace=workspace, kind=kind, state=RunState.AWAITING_APPROVAL, estimated_hourly_cost=Decimal("65.55")
    )
    Approval.objects.create(run=run, team=team, why_needed="Always.", expires_at=run.queued_at.replace(year=2100))
    return run


def test_gpu_impact_counts_the_runs_gpus_and_what_the_team_holds(vision: Team, settings: Any) -> None:
    from apps.clusters.models import ClusterState
    from apps.runs.models import WorkspaceStatus
    from apps.runs.selectors import gpu_impact
    from tests.factories import ClusterFactory

    settings.DEFAULT_GPU_QUOTA = 32
    ClusterFactory(team=vision, instance_type="g5.12xlarge", node_count=1, gpus_per_node=4)
    ClusterFactory(team=vision, node_count=3, gpus_per_node=1, state=ClusterState.STOPPED)  # frees its GPUs
    WorkspaceFactory(team=vision, status=WorkspaceStatus.READY, parameters={"instance_type": "g5.2xlarge"})
    WorkspaceFactory(team=vision, status=WorkspaceStatus.DESTROYED, parameters=GPU_CLUSTER)
    WorkspaceFactory(team=vision, status=WorkspaceStatus.READY)  # a sandbox: no GPU instance type

    impact = gpu_impact(gpu_run_awaiting_approval(vision, GPU_CLUSTER))

    assert impact is not None
    assert (impact.request.gpus, impact.request.gpus_per_node, impact.request.node_count) == (16, 8, 2)
    assert (impact.cluster_gpus, impact.workspace_gpus, impact.held) == (4, 1, 5)
    assert (impact.quota, impact.after, impact.over_quota) == (32, 21, False)


def test_runs_without_gpus_and_destroys_have_no_gpu_impact(vision: Team) -> None:
    from apps.runs.selectors import gpu_impact

    assert gpu_impact(gpu_run_awaiting_approval(vision, {"experiment_name": "x", "gpu_count": 1})) is None
    assert gpu_impact(gpu_run_awaiting_approval(vision, {"instance_type": "ml.g5.xlarge"})) is None
    assert gpu_impact(gpu_run_awaiting_approval(vision, GPU_CLUSTER, kind=RunKind.DESTROY)) is None


def test_approval_box_shows_gpu_quota_impact(client: Any, vision: Team, mark: Any, settings: Any) -> None:
    from tests.factories import ClusterFactory

    settings.DEFAULT_GPU_QUOTA = 24
    ClusterFactory(team=vision, instance_type="g5.12xlarge", node_count=1, gpus_per_node=4)
    run = gpu_run_awaiting_approval(vision, GPU_CLUSTER)
    client.force_login(mark)

    body = client.get(f"/runs/{run.pk}/").content.decode()

    assert "this run asks for <strong>16</strong> (2 × p4d.24xlarge, 8 each)" in body
    assert "holds 4 (4 on clusters, 0 on other workspaces) of its quota of 24" in body
    assert "with this run <strong>20 of 24</strong>" in body
    assert 'data-testid="over-quota"' not in body


def test_approval_box_flags_a_run_over_the_gpu_quota(client: Any, vision: Team, mark: Any, settings: Any) -> None:
    from tests.factories import ClusterFactory

    settings.DEFAULT_GPU_QUOTA = 16
    ClusterFactory(team=vision, instance_type="g5.48xlarge", node_count=1, gpus_per_node=8)
    run = gpu_run_awaiting_approval(vision, GPU_CLUSTER)
    client.force_login(mark)

    response = client.get(f"/runs/{run.pk}/status/")
    body = response.content.decode()

    assert response.status_code == 200
    assert "with this run <strong>24 of 16</strong>" in body
    assert "Over quota by 8 GPUs" in body
