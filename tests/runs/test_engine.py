"""The run engine end to end: real Celery worker, PostgreSQL (Terraform's pg backend), Redis and Terraform."""

from __future__ import annotations

import io
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.utils import timezone

from apps.accounts.models import Team
from apps.audit.models import AuditEvent
from apps.catalog.models import ApprovalPolicy, Template, TemplateVersion
from apps.catalog.services import launch_template
from apps.runs import services
from apps.runs.models import ApprovalStatus, Run, RunKind, RunLogChunk, RunState, Workspace, WorkspaceStatus
from tests.waiting import wait_state

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

PARAMS = {"experiment_name": "engine-test", "gpu_count": 1}


@pytest.fixture
def sandbox(db: None) -> TemplateVersion:
    call_command("sync_templates", stdout=io.StringIO())
    return TemplateVersion.objects.get(template__slug="sandbox-experiment")


def state_resources(workspace: Workspace) -> int:
    """Resources in the workspace's Terraform state, read straight from the pg backend's own schema."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s", [f"paved_ws_{workspace.pk}"]
        )
        if cursor.fetchone()[0] == 0:
            return 0
        cursor.execute(f'SELECT data FROM "paved_ws_{workspace.pk}".states WHERE name = %s', ["default"])  # noqa: S608
        row = cursor.fetchone()
    if row is None:
        return 0
    import json

    return len(json.loads(row[0]).get("resources", []))


def test_launch_runs_to_applied_with_outputs_and_masks_sensitive_ones(
    celery_worker: Any, sandbox: TemplateVersion, alice: Any, vision: Team, client: Client
) -> None:
    result = launch_template(actor=alice, team=vision, version=sandbox, params=PARAMS, name="engine-applied")

    run = wait_state(result.run, RunState.APPLIED, RunState.FAILED, RunState.ERRORED)

    assert run.state == RunState.APPLIED, run.state_reason
    workspace = Workspace.objects.get(pk=result.workspace.pk)
    assert workspace.status == WorkspaceStatus.READY
    assert workspace.locked_by is None
    assert workspace.outputs["run_id"]["value"]
    assert workspace.outputs["tracking_token"]["sensitive"] is True
    assert run.plan_summary["add"] >= 1
    assert run.log_lines > 0
    assert RunLogChunk.objects.filter(run=run).count() < run.log_lines
    assert state_resources(workspace) >= 1
    verbs = set(AuditEvent.objects.filter(target_id=str(run.pk), target_type="runs.run").values_list("verb", flat=True))
    assert {"run.planning", "run.planned", "run.applying", "run.applied"} <= verbs

    client.force_login(alice)
    page = client.get(f"/workspaces/{workspace.pk}/").content.decode()
    token = workspace.outputs["tracking_token"]["value"]
    assert token not in page
    assert "sensitive" in page
    api = client.get(f"/api/v1/workspaces/{workspace.pk}/").json()
    assert api["outputs"]["tracking_token"] != token
    log = client.get(f"/api/v1/runs/{run.pk}/log", {"after": 0}).json()
    assert log["complete"] is True
    assert any("Apply complete" in line for line in log["lines"])
    assert token not in "\n".join(log["lines"])


def test_approval_required_run_waits_then_applies_when_a_manager_approves(
    celery_worker: Any, sandbox: TemplateVersion, alice: Any, mark: Any, vision: Team
) -> None:
    TemplateVersion.objects.filter(pk=sandbox.pk).update(approval_policy=ApprovalPolicy.ALWAYS)
    sandbox.refresh_from_db()
    result = launch_template(actor=alice, team=vision, version=sandbox, params=PARAMS, name="engine-approval")

    run = wait_state(result.run, RunState.AWAITING_APPROVAL, RunState.FAILED)
    assert run.state == RunState.AWAITING_APPROVAL
    assert state_resources(result.workspace) == 0
    with pytest.raises(services.approvals.NotAnApprover):
        services.approve_run(actor=alice, run=run)

    services.approve_run(actor=mark, run=run, comment="go")

    run = wait_state(run, RunState.APPLIED, RunState.FAILED, RunState.ERRORED)
    assert run.state == RunState.APPLIED, run.state_reason
    assert run.approval.status == ApprovalStatus.APPROVED
    assert run.approval.decided_by == mark
    assert state_resources(result.workspace) >= 1


def test_rejected_run_applies_nothing_and_frees_the_workspace(
    celery_worker: Any, sandbox: TemplateVersion, alice: Any, mark: Any, vision: Team
) -> None:
    TemplateVersion.objects.filter(pk=sandbox.pk).update(approval_policy=ApprovalPolicy.ALWAYS)
    sandbox.refresh_from_db()
    result = launch_template(actor=alice, team=vision, version=sandbox, params=PARAMS, name="engine-reject")
    run = wait_state(result.run, RunState.AWAITING_APPROVAL)

    services.reject_run(actor=mark, run=run, comment="too big")

    run.refresh_from_db()
    assert run.state == RunState.REJECTED
    assert Workspace.objects.get(pk=result.workspace.pk).locked_by is None
    # Nothing applies it later: a late apply task finds nothing to do and the sweeper sends it nowhere.
    services.apply_approved_run(run_pk=run.pk)
    assert run.pk not in services.sweep_runs(now=timezone.now() + timedelta(hours=1)).redispatched
    assert Run.objects.get(pk=run.pk).state == RunState.REJECTED
    assert state_resources(result.workspace) == 0


def test_destroy_removes_every_resource_from_state(
    celery_worker: Any, sandbox: TemplateVersion, alice: Any, vision: Team
) -> None:
    result = launch_template(actor=alice, team=vision, version=sandbox, params=PARAMS, name="engine-destroy")
    wait_state(result.run, RunState.APPLIED)
    workspace = Workspace.objects.get(pk=result.workspace.pk)
    with pytest.raises(services.lifecycle.ConfirmationMismatch):
        services.request_destroy(actor=alice, workspace=workspace, confirm_name="wrong")

    destroy = services.request_destroy(actor=alice, workspace=workspace, confirm_name="engine-destroy")

    destroy = wait_state(destroy, RunState.APPLIED, RunState.FAILED, RunState.ERRORED)
    assert destroy.state == RunState.APPLIED, destroy.state_reason
    workspace.refresh_from_db()
    assert workspace.status == WorkspaceStatus.DESTROYED
    assert workspace.outputs == {}
    assert state_resources(workspace) == 0


def test_runs_of_one_workspace_go_one_at_a_time_in_order(
    celery_worker: Any, sandbox: TemplateVersion, alice: Any, vision: Team
) -> None:
    result = launch_template(actor=alice, team=vision, version=sandbox, params=PARAMS, name="engine-fifo")
    second = services.queue_run(actor=alice, workspace=result.workspace, kind=RunKind.APPLY, reason="again")

    wait_state(second, RunState.APPLIED, RunState.FAILED, RunState.ERRORED)
    first = Run.objects.get(pk=result.run.pk)
    second.refresh_from_db()
    assert first.state == RunState.APPLIED
    assert second.state == RunState.APPLIED
    assert first.finished_at is not None
    assert second.started_at is not None
    assert first.finished_at <= second.started_at
    assert second.plan_summary["add"] == 0  # nothing left to do: the first run applied it


# Not transactional: the launch's on-commit dispatch never fires, so no worker (the session's, started by an earlier
# test) can pick the run up and race the test or the teardown's flush.
@pytest.mark.django_db(transaction=False)
def test_cancelling_a_queued_run_stops_it_before_it_starts(sandbox: TemplateVersion, alice: Any, vision: Team) -> None:
    result = launch_template(
        actor=alice, team=vision, version=sandbox, params=PARAMS, name="engine-cancel"
    )  # no worker: stays queued
    run = services.cancel_run(actor=alice, run=result.run)
    assert run.state == RunState.CANCELLED
    services.execute_run(run_pk=run.pk)  # a late delivery of its task does nothing
    assert Run.objects.get(pk=run.pk).state == RunState.CANCELLED


@pytest.mark.django_db(transaction=False)  # as above: no dispatch, so the run stays queued
def test_illegal_transitions_are_refused(sandbox: TemplateVersion, alice: Any, vision: Team) -> None:
    run = launch_template(actor=alice, team=vision, version=sandbox, params=PARAMS, name="engine-illegal").run
    with pytest.raises(services.transitions.IllegalTransition):
        services.run_transition(run=run, to=RunState.APPLIED)
    assert Run.objects.get(pk=run.pk).state == RunState.QUEUED


def test_failed_run_can_be_retried(celery_worker: Any, sandbox: TemplateVersion, alice: Any, vision: Team) -> None:
    template = Template.objects.get(slug="sandbox-experiment")
    broken = TemplateVersion.objects.create(
        template=template, version="9.9.9", lifecycle="published", parameters_schema=sandbox.parameters_schema,
        price_model=sandbox.price_model, module_path="infra/templates/does-not-exist",
    )  # fmt: skip
    result = launch_template(actor=alice, team=vision, version=broken, params=PARAMS, name="engine-retry")
    failed = wait_state(result.run, RunState.FAILED, RunState.ERRORED)
    assert "module" in failed.state_reason
    assert Workspace.objects.get(pk=result.workspace.pk).locked_by is None

    retry = services.retry_run(actor=alice, run=failed)
    assert retry.retry_of == failed
    assert retry.state == RunState.QUEUED
    # The worker runs the retry (and fails it the same way); let it finish before the database is flushed.
    assert wait_state(retry, RunState.FAILED, RunState.ERRORED).state == RunState.FAILED
