"""Ways out for a workspace that destroy cannot help: forget one that never provisioned anything (Terraform
Cloud's "delete" as opposed to "destroy"), and a platform admin's force-delete of one whose destroy keeps failing.

Neither deletes rows: the workspace moves to `forgotten` or `deleted` (hidden from lists, its name free again) and
its runs and logs stay as history, so audit events, approvals and costs that point at them keep their meaning.
"""

from __future__ import annotations

from django.contrib.auth.models import User
from django.db import transaction
from django.http import HttpRequest

from apps.accounts.permissions import require
from apps.runs.errors import WorkspaceBusy, WorkspaceHasResources
from apps.runs.models import TERMINAL_STATES, Run, RunState, Workspace, WorkspaceStatus
from apps.runs.services.lifecycle import require_member, require_typed_name
from apps.runs.services.state import drop_state, managed_resources, read_state, redacted_state
from apps.runs.services.transitions import run_transition, workspace_transition

# Runs a force-delete may end itself: nothing of theirs is running. Planning and applying runs have a live
# Terraform that could still write state, so they must be cancelled (or swept) first.
WAITING_STATES = (RunState.QUEUED, RunState.PLANNED, RunState.AWAITING_APPROVAL)


def _runs_in_flight(workspace: Workspace) -> list[Run]:
    return list(workspace.runs.exclude(state__in=TERMINAL_STATES).order_by("pk"))


@transaction.atomic
def forget_workspace(*, actor: User, workspace: Workspace, request: HttpRequest | None = None) -> Workspace:
    """Forget a workspace none of whose runs ever applied anything and whose state holds no resource: there is
    nothing to destroy, so it simply leaves the lists (and frees its name). Anything else must be destroyed."""
    require_member(actor=actor, workspace=workspace)
    workspace = Workspace.objects.select_for_update().get(pk=workspace.pk)
    busy = _runs_in_flight(workspace)
    if busy:
        raise WorkspaceBusy(
            f"Run #{busy[0].pk} of {workspace.name} is {busy[0].state}; cancel it or let it finish, then forget.",
            code="runs_in_flight",
        )
    applied = workspace.runs.filter(state=RunState.APPLIED).order_by("pk").first()
    resources = managed_resources(state=read_state(workspace=workspace))
    if applied is not None or resources:
        what = f"run #{applied.pk} applied" if applied is not None else f"its state holds {', '.join(resources[:5])}"
        raise WorkspaceHasResources(
            f"{workspace.name} cannot be forgotten: {what}. Destroy it instead, so nothing is left running."
        )
    return workspace_transition(
        workspace=workspace,
        to=WorkspaceStatus.FORGOTTEN,
        actor=actor,
        reason="Forgotten: no run ever applied anything.",
        data={"runs": workspace.runs.count()},
        request=request,
    )


@transaction.atomic
def force_delete_workspace(
    *, actor: User, workspace: Workspace, confirm_name: str, reason: str = "", request: HttpRequest | None = None
) -> Workspace:
    """A platform admin's last resort for a workspace whose destroy keeps failing: waiting runs are discarded,
    the Terraform state (sensitive values redacted) goes into the audit event, then the state and its lock are
    removed and the workspace lock freed. Whatever the state listed may still exist in the cloud: the audit
    event says what to clean up by hand."""
    require(
        actor,
        "workspace.force_delete",
        message="Only platform admins may force-delete a workspace; destroy it instead.",
    )
    require_typed_name(workspace=workspace, confirm_name=confirm_name, what="force-delete")
    workspace = Workspace.objects.select_for_update().get(pk=workspace.pk)
    running = [run for run in _runs_in_flight(workspace) if run.state not in WAITING_STATES]
    if running:
        raise WorkspaceBusy(
            f"Run #{running[0].pk} is {running[0].state}: cancel it (or wait for the sweeper to end it) first.",
            code="runs_in_flight",
        )
    discarded = []
    for run in _runs_in_flight(workspace):
        run_transition(run=run, to=RunState.DISCARDED, actor=actor, reason="The workspace was force-deleted.")
        discarded.append(run.pk)
    state = read_state(workspace=workspace)
    deleted = workspace_transition(
        workspace=workspace,
        to=WorkspaceStatus.DELETED,
        actor=actor,
        reason=reason or "Force-deleted by a platform admin.",
        data={
            "left_behind": managed_resources(state=state),
            "state": redacted_state(state=state),
            "discarded_runs": discarded,
            "lock_held_by": workspace.locked_by_id,
        },
        request=request,
        locked_by=None,
        locked_at=None,
    )
    drop_state(workspace=workspace)
    return deleted
