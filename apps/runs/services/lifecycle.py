"""Asking for work on a workspace: new runs (apply again, destroy), cancel and retry."""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from apps.accounts.selectors import team_ids_for
from apps.audit.services import record
from apps.runs.errors import ConfirmationMismatch, NothingToRetry, WorkspaceBusy
from apps.runs.models import Run, RunKind, RunState, Workspace, WorkspaceStatus
from apps.runs.services.execution import dispatch_run, release_workspace_lock
from apps.runs.services.transitions import run_transition


def _require_member(actor: User, workspace: Workspace) -> None:
    if workspace.team_id not in team_ids_for(actor):
        raise WorkspaceBusy("You are not a member of this workspace's team.", code="not_a_team_member")


@transaction.atomic
def queue_run(
    actor: User, workspace: Workspace, *, kind: str, reason: str = "", request: HttpRequest | None = None
) -> Run:
    """Queue a run of `kind` on the workspace's pinned version and parameters; it starts when the workspace
    is free (runs of one workspace go one at a time, in order)."""
    _require_member(actor, workspace)
    if workspace.status == WorkspaceStatus.DESTROYED:
        raise WorkspaceBusy(f"{workspace.name} is destroyed; launch a new workspace instead.")
    run = Run.objects.create(
        workspace=workspace,
        team=workspace.team,
        kind=kind,
        state=RunState.QUEUED,
        state_reason="Waiting for a worker to pick it up.",
        template_version=workspace.template_version,
        parameters=workspace.parameters,
        estimated_hourly_cost=workspace.estimated_hourly_cost,
        reason=reason[:300],
        created_by=actor,
    )
    record(actor, workspace.team, f"run.requested_{kind}", run, {"workspace": workspace.name}, request)
    dispatch_run(run)
    return run


@transaction.atomic
def request_destroy(actor: User, workspace: Workspace, *, confirm_name: str, request: HttpRequest | None = None) -> Run:
    """Destroy everything the workspace created; the caller must type the workspace name to confirm."""
    if confirm_name.strip() != workspace.name:
        raise ConfirmationMismatch(f"Type the workspace name '{workspace.name}' exactly to confirm the destroy.")
    return queue_run(actor, workspace, kind=RunKind.DESTROY, reason="Destroy requested.", request=request)


@transaction.atomic
def cancel_run(actor: User, run: Run, *, request: HttpRequest | None = None) -> Run:
    """Queued or waiting runs stop at once; a running Terraform is interrupted by its worker (SIGINT, so the
    state lock is released) within about a second."""
    _require_member(actor, run.workspace)
    run = Run.objects.select_for_update().get(pk=run.pk)
    if run.state in {RunState.QUEUED, RunState.PLANNED, RunState.AWAITING_APPROVAL}:
        run_transition(run=run, to=RunState.CANCELLED, actor=actor, reason=f"Cancelled by {actor.username}.")
        release_workspace_lock(run)
    elif run.state in {RunState.PLANNING, RunState.APPLYING}:
        Run.objects.filter(pk=run.pk).update(cancel_requested=True, state_reason="Cancelling…")
        record(actor, run.team, "run.cancel_requested", run, {}, request)
    else:
        raise WorkspaceBusy(f"Run #{run.pk} is {run.state}; there is nothing to cancel.", code="run_not_cancellable")
    run.refresh_from_db()
    return run


@transaction.atomic
def retry_run(actor: User, run: Run, *, request: HttpRequest | None = None) -> Run:
    """A fresh run with the same kind, version and parameters as a failed, errored or cancelled one."""
    if not run.is_retryable:
        raise NothingToRetry(f"Run #{run.pk} is {run.state}; only failed, errored or cancelled runs can be retried.")
    retry = queue_run(actor, run.workspace, kind=run.kind, reason=f"Retry of run #{run.pk}.", request=request)
    retry.retry_of = run
    retry.save(update_fields=["retry_of", "updated_at"])
    return retry


def _system_run(workspace: Workspace, kind: str, reason: str) -> Run:
    """A run the platform starts itself (TTL, drift schedule), attributed to the workspace's creator."""
    run = Run.objects.create(
        workspace=workspace,
        team=workspace.team,
        kind=kind,
        state=RunState.QUEUED,
        state_reason="Waiting for a worker to pick it up.",
        template_version=workspace.template_version,
        parameters=workspace.parameters,
        estimated_hourly_cost=workspace.estimated_hourly_cost,
        reason=reason,
        created_by=workspace.created_by,
    )
    record(None, workspace.team, f"run.scheduled_{kind}", run, {"reason": reason})
    dispatch_run(run)
    return run


ACTIVE_STATES = [RunState.QUEUED, RunState.PLANNING, RunState.PLANNED, RunState.AWAITING_APPROVAL, RunState.APPLYING]


@transaction.atomic
def destroy_expired_workspaces() -> list[int]:
    """Beat task: workspaces past their TTL are destroyed (unless a run is already at work on them)."""
    expired = (
        Workspace.objects.select_for_update()
        .filter(
            expires_at__lte=timezone.now(),
            status__in=[WorkspaceStatus.READY, WorkspaceStatus.FAILED, WorkspaceStatus.DRIFTED],
        )
        .exclude(runs__state__in=ACTIVE_STATES)
    )
    return [_system_run(workspace, RunKind.DESTROY, "TTL expired.").pk for workspace in expired]


@transaction.atomic
def check_drift() -> list[int]:
    """Beat task: plan every ready workspace with -detailed-exitcode; drifted ones are marked."""
    ready = Workspace.objects.filter(status__in=[WorkspaceStatus.READY, WorkspaceStatus.DRIFTED]).exclude(
        runs__state__in=ACTIVE_STATES
    )
    return [_system_run(workspace, RunKind.DRIFT_CHECK, "Scheduled drift check.").pk for workspace in ready]
