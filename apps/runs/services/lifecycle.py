"""Asking for work on a workspace: new runs (apply again, destroy), cancel and retry."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.core.mail import send_mail
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from apps.accounts.permissions import can, require
from apps.audit.services import record
from apps.runs.errors import ConfirmationMismatch, InvalidExtension, NothingChanged, NothingToRetry, WorkspaceBusy
from apps.runs.models import Run, RunKind, RunState, Workspace, WorkspaceStatus
from apps.runs.services.execution import dispatch_run
from apps.runs.services.transitions import run_transition


def require_member(*, actor: User, workspace: Workspace) -> None:
    """Who may act on a workspace (new runs, destroy, cancel, forget): a member of its team."""
    require(actor, "workspace.operate", workspace, message="You are not a member of this workspace's team.")


def require_typed_name(*, workspace: Workspace, confirm_name: str, what: str) -> None:
    """Irreversible acts on a workspace are confirmed by typing its name, as a cluster's termination is."""
    if confirm_name.strip() != workspace.name:
        raise ConfirmationMismatch(f"Type the workspace name '{workspace.name}' exactly to confirm the {what}.")


def _new_run(
    workspace: Workspace,
    *,
    kind: str,
    reason: str,
    created_by: User,
    parameters: dict[str, Any] | None = None,
    hourly_cost: Decimal | None = None,
    approval_reason: str = "",
) -> Run:
    """A queued run on the workspace's pinned version and parameters (or edited ones), a snapshot: later edits
    never reach it."""
    return Run.objects.create(
        workspace=workspace,
        team=workspace.team,
        kind=kind,
        state=RunState.QUEUED,
        state_reason="Waiting for a worker to pick it up.",
        template_version=workspace.template_version,
        module_path=workspace.module_path,
        parameters=workspace.parameters if parameters is None else parameters,
        estimated_hourly_cost=workspace.estimated_hourly_cost if hourly_cost is None else hourly_cost,
        reason=reason[:300],
        created_by=created_by,
        approval_reason=approval_reason[:300],
    )


def _require_operable(workspace: Workspace) -> None:
    if workspace.has_ended:
        raise WorkspaceBusy(f"{workspace.name} is {workspace.status}; launch a new workspace instead.")


@transaction.atomic
def queue_run(
    *, actor: User, workspace: Workspace, kind: str, reason: str = "", request: HttpRequest | None = None
) -> Run:
    """Queue a run of `kind` on the workspace's pinned version and parameters; it starts when the workspace
    is free (runs of one workspace go one at a time, in order)."""
    require_member(actor=actor, workspace=workspace)
    _require_operable(workspace)
    run = _new_run(workspace, kind=kind, reason=reason, created_by=actor)
    record(
        actor=actor,
        team=workspace.team,
        verb=f"run.requested_{kind}",
        target=run,
        data={"workspace": workspace.name},
        request=request,
    )
    dispatch_run(run=run)
    return run


@transaction.atomic
def queue_parameter_change(
    *,
    actor: User,
    workspace: Workspace,
    parameters: dict[str, Any],
    hourly_cost: Decimal,
    approval_reason: str = "",
    reason: str = "",
    request: HttpRequest | None = None,
) -> Run:
    """A plan-and-apply run with edited parameters (already validated against the workspace's pinned version by
    the catalog). The workspace takes them when the run is applied; the template's and the team's approval
    policy apply to it as to a launch (`approval_reason` adds a budget's)."""
    require_member(actor=actor, workspace=workspace)
    _require_operable(workspace)
    changed = sorted(
        key for key in {*parameters, *workspace.parameters} if parameters.get(key) != workspace.parameters.get(key)
    )
    if not changed:
        raise NothingChanged("These are the parameters the workspace already has; change at least one value.")
    run = _new_run(
        workspace,
        kind=RunKind.APPLY,
        reason=reason or f"Change variables: {', '.join(changed)}.",
        created_by=actor,
        parameters=parameters,
        hourly_cost=hourly_cost,
        approval_reason=approval_reason,
    )
    record(
        actor=actor,
        team=workspace.team,
        verb="workspace.variables_changed",
        target=workspace,
        data={
            "run": run.pk,
            "changes": {key: {"from": workspace.parameters.get(key), "to": parameters.get(key)} for key in changed},
            "hourly": hourly_cost,
        },
        request=request,
    )
    dispatch_run(run=run)
    return run


@transaction.atomic
def request_destroy(*, actor: User, workspace: Workspace, confirm_name: str, request: HttpRequest | None = None) -> Run:
    """Destroy everything the workspace created; the caller must type the workspace name to confirm."""
    require_typed_name(workspace=workspace, confirm_name=confirm_name, what="destroy")
    return queue_run(
        actor=actor, workspace=workspace, kind=RunKind.DESTROY, reason="Destroy requested.", request=request
    )


@transaction.atomic
def cancel_run(*, actor: User, run: Run, request: HttpRequest | None = None) -> Run:
    """Queued or waiting runs stop at once; a running Terraform is interrupted by its worker (SIGINT, so the
    state lock is released) within about a second."""
    require_member(actor=actor, workspace=run.workspace)
    run = Run.objects.select_for_update().get(pk=run.pk)
    if run.state in {RunState.QUEUED, RunState.PLANNED, RunState.AWAITING_APPROVAL}:
        run_transition(run=run, to=RunState.CANCELLED, actor=actor, reason=f"Cancelled by {actor.username}.")
    elif run.state in {RunState.PLANNING, RunState.APPLYING}:
        Run.objects.filter(pk=run.pk).update(cancel_requested=True, state_reason="Cancelling…")
        record(actor=actor, team=run.team, verb="run.cancel_requested", target=run, data={}, request=request)
    else:
        raise WorkspaceBusy(f"Run #{run.pk} is {run.state}; there is nothing to cancel.", code="run_not_cancellable")
    run.refresh_from_db()
    return run


@transaction.atomic
def retry_run(*, actor: User, run: Run, request: HttpRequest | None = None) -> Run:
    """A fresh run with the same kind, version and parameters as a failed, errored or cancelled one."""
    if not run.is_retryable:
        raise NothingToRetry(f"Run #{run.pk} is {run.state}; only failed, errored or cancelled runs can be retried.")
    retry = queue_run(
        actor=actor, workspace=run.workspace, kind=run.kind, reason=f"Retry of run #{run.pk}.", request=request
    )
    retry.retry_of = run
    retry.save(update_fields=["retry_of", "updated_at"])
    return retry


def _system_run(workspace: Workspace, kind: str, reason: str) -> Run:
    """A run the platform starts itself (TTL, drift schedule), attributed to the workspace's creator."""
    run = _new_run(workspace, kind=kind, reason=reason, created_by=workspace.created_by)
    record(actor=None, team=workspace.team, verb=f"run.scheduled_{kind}", target=run, data={"reason": reason})
    dispatch_run(run=run)
    return run


ACTIVE_STATES = [RunState.QUEUED, RunState.PLANNING, RunState.PLANNED, RunState.AWAITING_APPROVAL, RunState.APPLYING]


@transaction.atomic
def destroy_expired_workspaces(*, now: datetime | None = None) -> list[int]:
    """Beat task: workspaces past their TTL at `now` (beat's clock unless a caller gives its own) are destroyed,
    unless a run is already at work on them."""
    expired = (
        Workspace.objects.select_for_update()
        .filter(
            expires_at__lte=now or timezone.now(),
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


@transaction.atomic
def extend_ttl(*, actor: User, workspace: Workspace, hours: int, request: HttpRequest | None = None) -> Workspace:
    """Push the expiry out to `hours` from now. Never beyond the template's maximum TTL from now: an owner can
    keep a workspace alive by extending it, but nothing outlives its maximum unattended."""
    require_member(actor=actor, workspace=workspace)
    workspace = Workspace.objects.select_for_update().get(pk=workspace.pk)
    if not can(actor, "workspace.extend", workspace):
        raise WorkspaceBusy("Only the workspace's owner or a team manager may extend it.", code="not_the_owner")
    if workspace.status in {WorkspaceStatus.DESTROYED, WorkspaceStatus.DESTROYING} or workspace.is_gone:
        raise WorkspaceBusy(f"{workspace.name} is {workspace.status}; it cannot be extended.")
    maximum = workspace.template_version.max_ttl_hours
    if hours < 1 or (maximum is not None and hours > maximum):
        raise InvalidExtension(f"Extend by 1 to {maximum or 'any number of'} hours for this template.")
    previous = workspace.expires_at
    workspace.expires_at = timezone.now() + timedelta(hours=hours)
    workspace.expiry_warned_at = None
    workspace.save(update_fields=["expires_at", "expiry_warned_at", "updated_at"])
    record(
        actor=actor,
        team=workspace.team,
        verb="workspace.extended",
        target=workspace,
        data={"from": previous, "to": workspace.expires_at},
        request=request,
    )
    return workspace


def warn_expiring_workspaces(*, now: datetime | None = None) -> list[int]:
    """Beat task: e-mail owners once when their workspace will be destroyed within TTL_WARNING_HOURS of `now`
    (beat's clock unless a caller gives its own)."""
    now = now or timezone.now()
    horizon = now + timedelta(hours=settings.TTL_WARNING_HOURS)
    warned = []
    for workspace in Workspace.objects.select_related("created_by").filter(
        expires_at__lte=horizon,
        expiry_warned_at__isnull=True,
        status__in=[WorkspaceStatus.READY, WorkspaceStatus.DRIFTED],
    ):
        send_mail(
            subject=f"[Paved] {workspace.name} will be destroyed at {workspace.expires_at:%Y-%m-%d %H:%M} UTC",
            message=(
                f"Your workspace {workspace.name} ({workspace.team.slug}) reaches the end of its time to live at "
                f"{workspace.expires_at:%Y-%m-%d %H:%M} UTC and will then be destroyed.\n"
                "Extend it from its page in Paved if you still need it."
            ),
            from_email=None,
            recipient_list=[workspace.created_by.email] if workspace.created_by.email else [],
            fail_silently=True,
        )
        Workspace.objects.filter(pk=workspace.pk).update(expiry_warned_at=now)
        record(
            actor=None,
            team=workspace.team,
            verb="workspace.expiry_warning",
            target=workspace,
            data={"expires_at": workspace.expires_at},
        )
        warned.append(workspace.pk)
    return warned
