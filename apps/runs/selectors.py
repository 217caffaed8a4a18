"""Reads of workspaces and runs, scoped to the caller's teams."""

from __future__ import annotations

from decimal import Decimal

from django.db.models import F, QuerySet, Sum

from apps.accounts.models import OVERSIGHT_ROLES
from apps.accounts.selectors import AnyUser, role_in, scope_to_teams
from apps.runs.models import Approval, ApprovalStatus, ChangeFreeze, Run, RunLogChunk, RunState, Workspace


def workspaces_for(user: AnyUser) -> QuerySet[Workspace]:
    workspaces = Workspace.objects.select_related("team", "template_version__template", "created_by")
    return scope_to_teams(workspaces, user)


def runs_for(user: AnyUser) -> QuerySet[Run]:
    runs = Run.objects.select_related("workspace", "team", "template_version__template", "created_by")
    return scope_to_teams(runs, user)


def workspace_for(user: AnyUser, workspace_id: int) -> Workspace | None:
    return workspaces_for(user).filter(pk=workspace_id).first()


def run_for(user: AnyUser, run_id: int) -> Run | None:
    return runs_for(user).filter(pk=run_id).first()


def can_approve(user: AnyUser, run: Run) -> bool:
    """Managers and admins of the run's team may decide it, except the person who requested it."""
    return role_in(user, run.team) in OVERSIGHT_ROLES and user.pk != run.created_by_id


def pending_approvals_for(user: AnyUser) -> QuerySet[Approval]:
    approvals = Approval.objects.select_related("run__workspace", "run__created_by", "team")
    return scope_to_teams(approvals, user, roles=OVERSIGHT_ROLES).filter(
        status=ApprovalStatus.PENDING, run__state=RunState.AWAITING_APPROVAL
    )


def log_chunks_after(run: Run, after_line: int, *, limit_lines: int = 2000) -> list[RunLogChunk]:
    """Chunks holding lines after `after_line` (the first may start before it), oldest first, up to about
    `limit_lines` lines. Rows are read lazily, so a 20,000-line log is never loaded whole."""
    chunks: list[RunLogChunk] = []
    total = 0
    ends_after = run.log_chunks.annotate(end=F("first_line") + F("line_count")).filter(end__gt=after_line + 1)
    for chunk in ends_after.order_by("seq").iterator(chunk_size=50):
        chunks.append(chunk)
        total += chunk.line_count
        if total >= limit_lines:
            break
    return chunks


def log_tail(run: Run, *, lines: int = 500) -> list[RunLogChunk]:
    """The last chunks of the log covering at least `lines` lines (older ones load on demand)."""
    chunks: list[RunLogChunk] = []
    total = 0
    for chunk in run.log_chunks.order_by("-seq").iterator(chunk_size=50):
        chunks.insert(0, chunk)
        total += chunk.line_count
        if total >= lines:
            break
    return chunks


def log_chunks_before(run: Run, before_line: int, *, limit_lines: int = 2000) -> list[RunLogChunk]:
    chunks: list[RunLogChunk] = []
    total = 0
    for chunk in run.log_chunks.filter(first_line__lt=before_line).order_by("-seq").iterator(chunk_size=50):
        chunks.insert(0, chunk)
        total += chunk.line_count
        if total >= limit_lines:
            break
    return chunks


SENSITIVE_MASK = "•••••• (sensitive)"


def masked_outputs(workspace: Workspace) -> dict[str, object]:
    """Outputs for pages and the API: values Terraform marks sensitive are never shown."""
    shown: dict[str, object] = {}
    for name, output in (workspace.outputs or {}).items():
        sensitive = isinstance(output, dict) and output.get("sensitive")
        shown[name] = SENSITIVE_MASK if sensitive else (output.get("value") if isinstance(output, dict) else output)
    return shown


def active_freeze() -> ChangeFreeze | None:
    """The change freeze in force, if the newest switch turned it on."""
    latest = ChangeFreeze.objects.order_by("-created_at", "-id").first()
    return latest if latest is not None and latest.active else None


def team_footprint(team_id: int, *, excluding_workspace: int | None = None) -> dict[str, object]:
    """What a team runs now (live workspaces and their estimated hourly cost), for an approver to weigh a
    request against; GPU quotas join this when clusters arrive."""
    live = Workspace.objects.filter(team_id=team_id).exclude(status__in=["destroyed", "failed"])
    if excluding_workspace is not None:
        live = live.exclude(pk=excluding_workspace)
    hourly = live.aggregate(total=Sum("estimated_hourly_cost"))["total"] or Decimal("0")
    return {"workspaces": live.count(), "hourly": hourly}
