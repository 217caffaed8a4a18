"""A workspace's life after launch, end to end: TTL teardown, drift checks, approval expiry, cancelling a running
apply, and the run actions of the REST API. Real Celery worker, PostgreSQL (Terraform's pg backend), Redis and
Terraform.

The module runs its own worker on a private broker and data dir (see `private_broker`): the beat services called
here act on every workspace in the database, and the runs they queue must reach this module's worker only.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.accounts.models import Team
from apps.audit.models import AuditEvent
from apps.catalog.models import TemplateVersion
from apps.catalog.services import launch_template
from apps.runs import services
from apps.runs.errors import ApprovalNotPending
from apps.runs.models import (
    Approval,
    ApprovalStatus,
    Run,
    RunKind,
    RunLogChunk,
    RunState,
    Workspace,
    WorkspaceStatus,
)
from tests.factories import RunFactory
from tests.runs.fixtures import (
    Workers,
    approval_version,
    forget_resource_out_of_band,
    private_broker,
    sandbox_version,
    sleeper_version,
    state_resources,
)
from tests.waiting import wait_for, wait_state

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

FINISHED = (RunState.APPLIED, RunState.FAILED, RunState.ERRORED, RunState.CANCELLED, RunState.DISCARDED)
SANDBOX_RESOURCES = ["terraform_data.sandbox", "terraform_data.tracking"]


@pytest.fixture(scope="module")
def engine(django_db_setup: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One worker for the module, on a broker and data dir of its own."""
    with private_broker() as broker:
        workers = Workers(broker.url, tmp_path_factory.mktemp("lifecycle"))
        try:
            workers.start("lifecycle-worker")
            yield
        finally:
            workers.stop_all()


@pytest.fixture
def sandbox(engine: None) -> TemplateVersion:
    return sandbox_version()


@pytest.fixture
def gated(sandbox: TemplateVersion) -> TemplateVersion:
    """The sandbox module as a version that always needs a manager's approval."""
    return approval_version(sandbox)


def launch_applied(actor: Any, team: Team, version: TemplateVersion, name: str) -> Workspace:
    result = launch_template(actor=actor, team=team, version=version, params={"experiment_name": name}, name=name)
    run = wait_state(result.run, *FINISHED)
    assert run.state == RunState.APPLIED, run.state_reason
    return Workspace.objects.get(pk=result.workspace.pk)


def launch_awaiting_approval(actor: Any, team: Team, gated: TemplateVersion, name: str) -> Run:
    result = launch_template(actor=actor, team=team, version=gated, params={"experiment_name": name}, name=name)
    run = wait_state(result.run, RunState.AWAITING_APPROVAL, *FINISHED)
    assert run.state == RunState.AWAITING_APPROVAL, run.state_reason
    return run


# --- TTL ----------------------------------------------------------------------------------------------------


def test_expired_workspace_is_destroyed_and_busy_or_unexpiring_ones_are_left_alone(
    sandbox: TemplateVersion, alice: Any, vision: Team
) -> None:
    expired = launch_applied(alice, vision, sandbox, "ttl-expired")
    busy = launch_applied(alice, vision, sandbox, "ttl-busy")
    forever = launch_applied(alice, vision, sandbox, "ttl-forever")
    past = timezone.now() - timedelta(minutes=1)
    Workspace.objects.filter(pk__in=[expired.pk, busy.pk]).update(expires_at=past)
    Workspace.objects.filter(pk=forever.pk).update(expires_at=None)
    # a re-apply of `busy` waiting for approval: the workspace is in use, whatever its TTL says
    pending = RunFactory(workspace=busy, created_by=alice, state=RunState.AWAITING_APPROVAL)

    queued = services.destroy_expired_workspaces()

    assert len(queued) == 1
    destroy = Run.objects.get(pk=queued[0])
    assert destroy.workspace_id == expired.pk
    assert destroy.kind == RunKind.DESTROY
    assert destroy.reason == "TTL expired."
    assert AuditEvent.objects.filter(verb="run.scheduled_destroy", target_id=str(destroy.pk)).exists()
    destroy = wait_state(destroy, *FINISHED)
    assert destroy.state == RunState.APPLIED, destroy.state_reason
    expired.refresh_from_db()
    assert expired.status == WorkspaceStatus.DESTROYED
    assert expired.locked_by is None
    assert expired.outputs == {}
    assert state_resources(expired) == []

    assert not busy.runs.filter(kind=RunKind.DESTROY).exists()
    assert Run.objects.get(pk=pending.pk).state == RunState.AWAITING_APPROVAL
    assert Workspace.objects.get(pk=busy.pk).status == WorkspaceStatus.READY
    assert state_resources(busy) == SANDBOX_RESOURCES
    assert not forever.runs.filter(kind=RunKind.DESTROY).exists()
    assert Workspace.objects.get(pk=forever.pk).status == WorkspaceStatus.READY
    assert services.destroy_expired_workspaces() == []  # a destroyed workspace is not destroyed again


# --- Drift --------------------------------------------------------------------------------------------------


def test_drift_check_marks_a_workspace_whose_state_changed_out_of_band_and_passes_a_clean_one(
    sandbox: TemplateVersion, alice: Any, vision: Team
) -> None:
    drifting = launch_applied(alice, vision, sandbox, "drift-changed")
    clean = launch_applied(alice, vision, sandbox, "drift-clean")
    forget_resource_out_of_band(drifting, "terraform_data.tracking")

    queued = services.check_drift()

    checks = {run.workspace_id: run for run in Run.objects.filter(pk__in=queued)}
    assert set(checks) == {drifting.pk, clean.pk}
    assert {run.kind for run in checks.values()} == {RunKind.DRIFT_CHECK}
    drift = wait_state(checks[drifting.pk], *FINISHED)
    assert drift.state == RunState.DISCARDED
    assert drift.state_reason.startswith("Drift detected: 1 to add"), drift.state_reason
    assert Workspace.objects.get(pk=drifting.pk).status == WorkspaceStatus.DRIFTED
    assert state_resources(drifting) == ["terraform_data.sandbox"]  # a drift check only plans, never applies
    no_drift = wait_state(checks[clean.pk], *FINISHED)
    assert no_drift.state == RunState.DISCARDED
    assert no_drift.state_reason.startswith("No drift"), no_drift.state_reason
    assert Workspace.objects.get(pk=clean.pk).status == WorkspaceStatus.READY
    assert Workspace.objects.filter(pk__in=[drifting.pk, clean.pk], locked_by__isnull=False).count() == 0


# --- Approval expiry ----------------------------------------------------------------------------------------


def test_expired_approval_discards_the_run_and_frees_the_workspace(
    gated: TemplateVersion, alice: Any, mark: Any, vision: Team
) -> None:
    run = launch_awaiting_approval(alice, vision, gated, "approval-expires")
    assert Workspace.objects.get(pk=run.workspace_id).locked_by_id == run.pk
    Approval.objects.filter(run=run).update(expires_at=timezone.now() - timedelta(seconds=1))

    assert services.expire_approvals() == 1

    run.refresh_from_db()
    assert run.approval.status == ApprovalStatus.EXPIRED
    assert run.state == RunState.DISCARDED
    assert run.state_reason == "The approval request expired."
    assert Workspace.objects.get(pk=run.workspace_id).locked_by is None
    with pytest.raises(ApprovalNotPending):
        services.approve_run(actor=mark, run=run)
    assert services.expire_approvals(now=timezone.now() + timedelta(days=30)) == 0  # nor on any later sweep
    # Nothing applies it later: a late apply task finds nothing to do and the sweeper sends it nowhere.
    services.apply_approved_run(run_pk=run.pk)
    assert run.pk not in services.sweep_runs(now=timezone.now() + timedelta(hours=1)).redispatched
    assert Run.objects.get(pk=run.pk).state == RunState.DISCARDED
    assert state_resources(run.workspace) == []


def test_approval_of_a_cancelled_run_expires_without_blocking_the_other_expiries(
    gated: TemplateVersion, alice: Any, mark: Any, vision: Team
) -> None:
    cancelled = launch_awaiting_approval(alice, vision, gated, "approval-cancelled")
    waiting = launch_awaiting_approval(alice, vision, gated, "approval-waiting")
    services.cancel_run(actor=alice, run=cancelled)
    with pytest.raises(ApprovalNotPending):
        services.approve_run(actor=mark, run=cancelled)  # nothing left to decide
    Approval.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    assert services.expire_approvals() == 2

    cancelled.refresh_from_db()
    waiting.refresh_from_db()
    assert cancelled.state == RunState.CANCELLED
    assert cancelled.approval.status == ApprovalStatus.EXPIRED
    assert waiting.state == RunState.DISCARDED
    assert waiting.approval.status == ApprovalStatus.EXPIRED
    assert Workspace.objects.filter(locked_by__isnull=False).count() == 0


# --- Cancel -------------------------------------------------------------------------------------------------


def test_cancelling_a_running_apply_interrupts_terraform_and_frees_the_workspace_and_state_lock(
    engine: None, alice: Any, vision: Team
) -> None:
    sleeper = sleeper_version()  # its apply sleeps 30 s in a local-exec provisioner
    result = launch_template(actor=alice, team=vision, version=sleeper, params={}, name="cancel-applying")
    run = wait_state(result.run, RunState.APPLYING, *FINISHED)
    assert run.state == RunState.APPLYING, run.state_reason
    applying_at = time.monotonic()
    wait_for(
        lambda: RunLogChunk.objects.filter(run=run, text__contains="Provisioning with 'local-exec'").exists(),
        timeout=30,
        message="the local-exec provisioner to start",
    )
    # the live log keeps up while Terraform is quiet (it next prints "Still creating..." after 10 s)
    assert time.monotonic() - applying_at < 8

    asked_at = time.monotonic()
    cancelling = services.cancel_run(actor=alice, run=run)
    assert cancelling.cancel_requested
    run = wait_state(run, *FINISHED, timeout=20)

    assert time.monotonic() - asked_at < 20
    assert run.state == RunState.CANCELLED, run.state_reason
    assert "interrupted" in run.state_reason
    workspace = Workspace.objects.get(pk=result.workspace.pk)
    assert workspace.locked_by is None
    assert AuditEvent.objects.filter(verb="run.cancel_requested", target_id=str(run.pk)).exists()

    again = services.queue_run(actor=alice, workspace=workspace, kind=RunKind.APPLY, reason="after the cancel")
    again = wait_state(again, RunState.APPLYING, *FINISHED, timeout=60)
    assert again.state == RunState.APPLYING, again.state_reason  # planned: Terraform's state lock was free
    assert again.plan_summary["add"] == 1
    services.cancel_run(actor=alice, run=again)
    assert wait_state(again, *FINISHED, timeout=20).state == RunState.CANCELLED


# --- REST API -----------------------------------------------------------------------------------------------


def test_api_approve_is_for_managers_of_the_team_and_applies_the_run(
    gated: TemplateVersion, alice: Any, bob: Any, mark: Any, vision: Team, api: APIClient
) -> None:
    run = launch_awaiting_approval(alice, vision, gated, "api-approve")
    url = f"/api/v1/runs/{run.pk}"

    api.force_authenticate(alice)
    refused = api.post(f"{url}/approve", {"comment": "self-approval"}, format="json")
    assert refused.status_code == 403
    assert refused.json()["code"] == "not_an_approver"
    assert refused["Content-Type"] == "application/problem+json"

    api.force_authenticate(bob)
    for action in ("approve", "reject", "cancel", "retry"):
        hidden = api.post(f"{url}/{action}", {}, format="json")
        assert hidden.status_code == 404, action
        assert hidden.json()["code"] == "not_found"

    api.force_authenticate(mark)
    approved = api.post(f"{url}/approve", {"comment": "go"}, format="json")
    assert approved.status_code == 200
    assert approved.json()["id"] == run.pk
    assert wait_state(run, *FINISHED).state == RunState.APPLIED
    twice = api.post(f"{url}/approve", {}, format="json")
    assert twice.status_code == 409
    assert twice.json()["code"] == "approval_not_pending"

    api.force_authenticate(alice)
    retry = api.post(f"{url}/retry", format="json")
    assert retry.status_code == 409
    assert retry.json()["code"] == "nothing_to_retry"
    cancel = api.post(f"{url}/cancel", format="json")
    assert cancel.status_code == 409
    assert cancel.json()["code"] == "run_not_cancellable"


def test_api_reject_throws_the_plan_away_and_frees_the_workspace(
    gated: TemplateVersion, alice: Any, mark: Any, vision: Team, api: APIClient
) -> None:
    run = launch_awaiting_approval(alice, vision, gated, "api-reject")
    api.force_authenticate(mark)

    response = api.post(f"/api/v1/runs/{run.pk}/reject", {"comment": "too big"}, format="json")

    assert response.status_code == 200
    assert response.json()["state"] == RunState.REJECTED
    run.refresh_from_db()
    assert run.approval.status == ApprovalStatus.REJECTED
    assert Workspace.objects.get(pk=run.workspace_id).locked_by is None
    assert state_resources(run.workspace) == []


def test_api_cancel_then_retry_queues_a_fresh_run_of_the_same_kind(
    gated: TemplateVersion, alice: Any, vision: Team, api: APIClient
) -> None:
    run = launch_awaiting_approval(alice, vision, gated, "api-retry")
    api.force_authenticate(alice)

    cancelled = api.post(f"/api/v1/runs/{run.pk}/cancel", format="json")
    assert cancelled.status_code == 200
    assert cancelled.json()["state"] == RunState.CANCELLED
    retried = api.post(f"/api/v1/runs/{run.pk}/retry", format="json")

    assert retried.status_code == 201
    body = retried.json()
    assert body["retry_of"] == run.pk
    assert body["kind"] == RunKind.APPLY
    assert body["state"] == RunState.QUEUED
    retry = wait_state(Run.objects.get(pk=body["id"]), RunState.AWAITING_APPROVAL, *FINISHED)
    assert retry.state == RunState.AWAITING_APPROVAL, retry.state_reason  # same version, same policy


def test_api_workspace_runs_queue_an_apply_and_destroy_only_with_the_workspace_name(
    sandbox: TemplateVersion, alice: Any, bob: Any, vision: Team, api: APIClient
) -> None:
    workspace = launch_applied(alice, vision, sandbox, "api-runs")
    url = f"/api/v1/workspaces/{workspace.pk}/runs"

    api.force_authenticate(bob)
    hidden = api.post(url, {"kind": "destroy", "confirm": "api-runs"}, format="json")
    assert hidden.status_code == 404
    assert hidden.json()["code"] == "not_found"

    api.force_authenticate(alice)
    reapply = api.post(url, {"kind": "apply", "reason": "refresh"}, format="json")
    assert reapply.status_code == 201
    assert reapply.json()["kind"] == RunKind.APPLY
    assert reapply.json()["reason"] == "refresh"
    assert wait_state(Run.objects.get(pk=reapply.json()["id"]), *FINISHED).state == RunState.APPLIED
    mismatch = api.post(url, {"kind": "destroy", "confirm": "api-run"}, format="json")
    assert mismatch.status_code == 400
    assert mismatch.json()["code"] == "confirmation_mismatch"
    invalid = api.post(url, {"kind": "teleport"}, format="json")
    assert invalid.status_code == 400
    assert invalid.json()["code"] == "validation_failed"
    assert "kind" in invalid.json()["errors"]
    assert workspace.runs.count() == 2

    destroy = api.post(url, {"kind": "destroy", "confirm": "api-runs"}, format="json")

    assert destroy.status_code == 201
    assert destroy.json()["kind"] == RunKind.DESTROY
    assert wait_state(Run.objects.get(pk=destroy.json()["id"]), *FINISHED).state == RunState.APPLIED
    assert Workspace.objects.get(pk=workspace.pk).status == WorkspaceStatus.DESTROYED
    assert state_resources(workspace) == []
    gone = api.post(url, {"kind": "apply"}, format="json")
    assert gone.status_code == 409
    assert gone.json()["code"] == "workspace_busy"
