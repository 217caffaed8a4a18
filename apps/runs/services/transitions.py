"""The one way a run, a workspace or an approval changes state (through `apps.core.transitions`), and how a
workspace's status follows its runs.

Entering a terminal run state frees the workspace in the same transaction (nobody may ever see a finished run
still holding it) and, once that commits, sends the workspace's next queued run to a worker.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.http import HttpRequest
from django.utils import timezone

from apps.core.transitions import Change, Machine, SideEffect, transition
from apps.runs.errors import IllegalTransition
from apps.runs.models import (
    ALLOWED_TRANSITIONS,
    GONE_STATUSES,
    TERMINAL_STATES,
    Approval,
    ApprovalStatus,
    Run,
    RunKind,
    RunState,
    Workspace,
    WorkspaceStatus,
)

# (run kind, new run state) -> workspace status. Missing pairs leave the workspace as it is.
WORKSPACE_STATUS = {
    (RunKind.APPLY, RunState.APPLIED): WorkspaceStatus.READY,
    (RunKind.APPLY, RunState.FAILED): WorkspaceStatus.FAILED,
    (RunKind.APPLY, RunState.ERRORED): WorkspaceStatus.FAILED,
    (RunKind.DESTROY, RunState.PLANNING): WorkspaceStatus.DESTROYING,
    (RunKind.DESTROY, RunState.APPLIED): WorkspaceStatus.DESTROYED,
    (RunKind.DESTROY, RunState.FAILED): WorkspaceStatus.FAILED,
    (RunKind.DESTROY, RunState.ERRORED): WorkspaceStatus.FAILED,
}

# The moves a person makes on a workspace itself (not through a run): status -> the statuses it may come from.
# Forgetting is only for workspaces that never provisioned anything (the service checks runs and state too);
# force-deleting is the platform admin's way out of any status.
WORKSPACE_TRANSITIONS: dict[str, frozenset[str]] = {
    WorkspaceStatus.FORGOTTEN: frozenset({WorkspaceStatus.PROVISIONING, WorkspaceStatus.FAILED}),
    WorkspaceStatus.DELETED: frozenset(set(WorkspaceStatus) - GONE_STATUSES),
}

# A pending approval is decided once (approved, rejected) or lapses (expired).
APPROVAL_TRANSITIONS: dict[str, frozenset[str]] = {
    ApprovalStatus.PENDING: frozenset({ApprovalStatus.APPROVED, ApprovalStatus.REJECTED, ApprovalStatus.EXPIRED}),
    ApprovalStatus.APPROVED: frozenset(),
    ApprovalStatus.REJECTED: frozenset(),
    ApprovalStatus.EXPIRED: frozenset(),
}


# --- Workspace status that follows its runs ---------------------------------------------------------------


def follow_runs(*, workspace_id: int, to: str, now: datetime | None = None, only_from: Iterable[str] = ()) -> None:
    """Set the status a workspace takes from its runs (or a drift check's verdict); a forgotten or deleted
    workspace stays gone whatever a late run does. `only_from` limits the move to those statuses."""
    workspaces = Workspace.objects.filter(pk=workspace_id).exclude(status__in=GONE_STATUSES)
    if only_from:
        workspaces = workspaces.filter(status__in=list(only_from))
    workspaces.update(status=to, updated_at=now or timezone.now())


def _first_start(change: Change[Run]) -> Iterable[str]:
    if change.obj.started_at is None:
        change.obj.started_at = change.now
        return ["started_at"]
    return []


def _free_workspace(change: Change[Run]) -> None:
    Workspace.objects.filter(pk=change.obj.workspace_id, locked_by=change.obj).update(locked_by=None, locked_at=None)


def _workspace_follows(change: Change[Run]) -> None:
    run = change.obj
    status = WORKSPACE_STATUS.get((RunKind(run.kind), RunState(change.to)))
    if status is not None:
        follow_runs(workspace_id=run.workspace_id, to=status, now=change.now)
    elif run.kind == RunKind.APPLY and change.to in {RunState.REJECTED, RunState.CANCELLED, RunState.DISCARDED}:
        # A first launch that never applied leaves nothing provisioned: say so instead of "provisioning" forever.
        follow_runs(
            workspace_id=run.workspace_id,
            to=WorkspaceStatus.FAILED,
            now=change.now,
            only_from=[WorkspaceStatus.PROVISIONING],
        )


def _dispatch_next(change: Change[Run]) -> None:
    """After commit: the workspace is free, so its oldest queued run may start (claiming re-checks all this)."""
    from apps.runs.services.execution import dispatch_run

    following = Run.objects.filter(workspace_id=change.obj.workspace_id, state=RunState.QUEUED).order_by("pk").first()
    if following is not None:
        dispatch_run(run=following)


RUN_MACHINE: Machine[Run] = Machine(
    model=Run,
    field="state",
    edges=ALLOWED_TRANSITIONS,
    illegal=lambda run, previous, to: IllegalTransition(f"Run #{run.pk} is {previous}; it cannot become {to}."),
    reason_field="state_reason",
    stamps={state: "finished_at" for state in TERMINAL_STATES},
    related=("workspace", "team"),
    audit_verb=lambda to: f"run.{to}",
    effects=(
        SideEffect(enters={RunState.PLANNING}, apply=_first_start),
        SideEffect(enters=TERMINAL_STATES, apply=lambda change: _free_workspace(change), on_commit=_dispatch_next),
        SideEffect(apply=lambda change: _workspace_follows(change)),
    ),
)


def run_transition(*, run: Run, to: str, actor: User | None = None, reason: str = "", **fields: Any) -> Run:
    """Move `run` to `to` if ALLOWED_TRANSITIONS permits it; stamp times, audit, update the workspace, and on a
    terminal state free the workspace and (after commit) start its next queued run."""
    return transition(RUN_MACHINE, obj=run, to=to, actor=actor, reason=reason, fields=fields)


# --- Workspaces ---------------------------------------------------------------------------------------------

WORKSPACE_MACHINE: Machine[Workspace] = Machine(
    model=Workspace,
    field="status",
    edges={
        status: frozenset(to for to, sources in WORKSPACE_TRANSITIONS.items() if status in sources)
        for status in WorkspaceStatus
    },
    illegal=lambda ws, previous, to: IllegalTransition(
        f"Workspace {ws.name} is {previous}; it cannot become {to}.", code="illegal_workspace_transition"
    ),
    related=("team",),
    audit_verb=lambda to: f"workspace.{to}",
)


def workspace_transition(
    *,
    workspace: Workspace,
    to: str,
    actor: User | None,
    reason: str,
    data: dict[str, Any] | None = None,
    request: HttpRequest | None = None,
    **fields: Any,
) -> Workspace:
    """Move a workspace itself to `to` (forgotten, deleted) if WORKSPACE_TRANSITIONS permits it; audit it as
    `workspace.<to>` with `data`. `fields` are saved in the same breath (freeing the lock, say)."""
    return transition(
        WORKSPACE_MACHINE,
        obj=workspace,
        to=to,
        actor=actor,
        reason=reason,
        audit_data=data,
        request=request,
        fields=fields,
    )


# --- Approvals ------------------------------------------------------------------------------------------------

APPROVAL_MACHINE: Machine[Approval] = Machine(
    model=Approval,
    field="status",
    edges=APPROVAL_TRANSITIONS,
    illegal=lambda approval, previous, to: IllegalTransition(
        f"This approval is already {previous}; it cannot become {to}.", code="approval_not_pending"
    ),
    audit_target=lambda approval: approval.run,
    audit_data=lambda change: {},
    related=("run", "team"),
)


def approval_transition(
    *,
    approval: Approval,
    to: str,
    actor: User | None = None,
    audit_data: dict[str, Any] | None = None,
    request: HttpRequest | None = None,
    **fields: Any,
) -> Approval:
    """Decide or expire a pending approval. A decision is audited on the run as `approval.<status>` with
    `audit_data`; an expiry is not (the run's own transition to discarded says so)."""
    return transition(
        APPROVAL_MACHINE,
        obj=approval,
        to=to,
        actor=actor,
        audit_action=f"approval.{to}" if audit_data is not None else None,
        audit_data=audit_data,
        request=request,
        fields=fields,
    )
