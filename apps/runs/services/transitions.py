"""The one way a run changes state, and how a workspace's status follows its runs."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from apps.audit.services import record
from apps.runs.errors import IllegalTransition
from apps.runs.models import (
    ALLOWED_TRANSITIONS,
    GONE_STATUSES,
    TERMINAL_STATES,
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


@transaction.atomic
def run_transition(*, run: Run, to: str, actor: User | None = None, reason: str = "", **fields: Any) -> Run:
    """Move `run` to `to` if ALLOWED_TRANSITIONS permits it; stamp times, audit, and update the workspace."""
    locked = Run.objects.select_for_update().select_related("workspace", "team").get(pk=run.pk)
    if to not in ALLOWED_TRANSITIONS[RunState(locked.state)]:
        raise IllegalTransition(f"Run #{locked.pk} is {locked.state}; it cannot become {to}.")
    previous = locked.state
    now = timezone.now()
    locked.state = to
    locked.state_reason = reason[:300]
    updated = {"state", "state_reason", "updated_at", *fields}
    for name, value in fields.items():
        setattr(locked, name, value)
    if to == RunState.PLANNING and locked.started_at is None:
        locked.started_at = now
        updated.add("started_at")
    if to in TERMINAL_STATES:
        locked.finished_at = now
        updated.add("finished_at")
        # Free the workspace in the same transaction: nobody may ever see a finished run still holding it.
        Workspace.objects.filter(pk=locked.workspace_id, locked_by=locked).update(locked_by=None, locked_at=None)
    locked.save(update_fields=sorted(updated))
    status = WORKSPACE_STATUS.get((RunKind(locked.kind), RunState(to)))
    if status is not None:  # a forgotten or deleted workspace stays gone whatever a late run does
        Workspace.objects.filter(pk=locked.workspace_id).exclude(status__in=GONE_STATUSES).update(
            status=status, updated_at=now
        )
    elif locked.kind == RunKind.APPLY and to in {RunState.REJECTED, RunState.CANCELLED, RunState.DISCARDED}:
        # A first launch that never applied leaves nothing provisioned: say so instead of "provisioning" forever.
        Workspace.objects.filter(pk=locked.workspace_id, status=WorkspaceStatus.PROVISIONING).update(
            status=WorkspaceStatus.FAILED, updated_at=now
        )
    record(actor, locked.team, f"run.{to}", locked, {"from": previous, "reason": reason[:300]})
    run.__dict__.update({name: getattr(locked, name) for name in updated})
    return locked


@transaction.atomic
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
    locked = Workspace.objects.select_for_update().select_related("team").get(pk=workspace.pk)
    if locked.status not in WORKSPACE_TRANSITIONS.get(to, frozenset()):
        raise IllegalTransition(
            f"Workspace {locked.name} is {locked.status}; it cannot become {to}.", code="illegal_workspace_transition"
        )
    previous = locked.status
    locked.status = to
    for name, value in fields.items():
        setattr(locked, name, value)
    locked.save(update_fields=sorted({"status", "updated_at", *fields}))
    audit = {"from": previous, "reason": reason[:300], **(data or {})}
    record(actor, locked.team, f"workspace.{to}", locked, audit, request)
    workspace.__dict__.update({name: getattr(locked, name) for name in ("status", *fields)})
    return locked
