"""Reads of workspaces and runs, scoped to the caller's teams."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db.models import QuerySet, Sum

from apps.accounts.permissions import OVERSEE, AnyUser, can, is_platform_admin, restrict, team_ids_for
from apps.audit.models import AuditEvent
from apps.clusters.instance_catalog import load_catalog
from apps.clusters.models import Cluster
from apps.clusters.selectors import effective_quota, own_cluster_deadlines, team_gpu_usage
from apps.core.logs import chunks_after
from apps.runs.models import (
    GONE_STATUSES,
    TERMINAL_STATES,
    Approval,
    ApprovalStatus,
    ChangeFreeze,
    Run,
    RunKind,
    RunLogChunk,
    RunState,
    Workspace,
    WorkspaceStatus,
)


def workspaces_for(user: AnyUser) -> QuerySet[Workspace]:
    workspaces = Workspace.objects.select_related("team", "template_version__template", "created_by")
    return restrict(workspaces, user)


def listed_workspaces_for(user: AnyUser, *, status: str | None = None) -> QuerySet[Workspace]:
    """Workspaces for lists: forgotten and force-deleted ones are left out unless asked for by `status` (their
    pages, runs and audit trail stay reachable)."""
    workspaces = workspaces_for(user)
    return workspaces if status in GONE_STATUSES else workspaces.exclude(status__in=GONE_STATUSES)


def workspace_name_problem(*, team_slug: str, name: str) -> str:
    """Why `name` cannot name a new workspace of the team ("" when it is free): names are unique among the team's
    workspaces that still exist (a forgotten or deleted one frees its name). The launch form asks as the user
    types; `create_workspace` asks again on submit, and the unique constraint settles a race between the two."""
    taken = Workspace.objects.filter(team__slug=team_slug, name=name).exclude(status__in=GONE_STATUSES).exists()
    return f"Team '{team_slug}' already has a workspace named '{name}'. Pick another name." if taken else ""


def runs_for(user: AnyUser) -> QuerySet[Run]:
    runs = Run.objects.select_related("workspace", "team", "template_version__template", "created_by")
    return restrict(runs, user)


def workspace_for(user: AnyUser, workspace_id: int) -> Workspace | None:
    return workspaces_for(user).filter(pk=workspace_id).first()


def run_for(user: AnyUser, run_id: int) -> Run | None:
    return runs_for(user).filter(pk=run_id).first()


def can_approve(user: AnyUser, run: Run) -> bool:
    """Managers and admins of the run's team may decide it, except the person who requested it."""
    return can(user, "run.approve", run)


def pending_approvals_for(user: AnyUser) -> QuerySet[Approval]:
    approvals = Approval.objects.select_related("run__workspace", "run__created_by", "team")
    return restrict(approvals, user, OVERSEE).filter(
        status=ApprovalStatus.PENDING, run__state=RunState.AWAITING_APPROVAL
    )


def approvals_waiting_for(user: AnyUser) -> QuerySet[Approval]:
    """Pending approvals the user can decide: their teams' (as manager or admin), less the runs they requested
    themselves (nobody approves their own run). The navigation's badge counts these."""
    return pending_approvals_for(user).exclude(run__created_by_id=user.pk).order_by("expires_at", "pk")


# Workspaces that hold nothing any more: left out of "your workspaces".
_ENDED_WORKSPACE_STATUSES = [WorkspaceStatus.DESTROYED, *GONE_STATUSES]


def own_workspaces(user: AnyUser, *, limit: int = 10) -> list[Workspace]:
    """The user's own workspaces that still exist, newest first (their home page's "Your workspaces")."""
    mine = workspaces_for(user).filter(created_by_id=user.pk).exclude(status__in=_ENDED_WORKSPACE_STATUSES)
    return list(mine.order_by("-created_at", "-pk")[:limit])


def own_runs_in_flight(user: AnyUser, *, limit: int = 10) -> list[Run]:
    """Runs the user asked for that have not ended yet, newest first."""
    mine = runs_for(user).filter(created_by_id=user.pk).exclude(state__in=TERMINAL_STATES)
    return list(mine.order_by("-queued_at", "-pk")[:limit])


@dataclass(frozen=True)
class Expiry:
    """Something of the user's that goes away by itself soon: a workspace's TTL, or a cluster's auto-stop or
    maximum hours. `target` is the Workspace or the Cluster."""

    target: Workspace | Cluster
    at: datetime
    why: str

    @property
    def is_cluster(self) -> bool:
        return isinstance(self.target, Cluster)


def expiring_soon(user: AnyUser, *, now: datetime, within: timedelta = timedelta(hours=48)) -> list[Expiry]:
    """The user's workspaces whose TTL ends and clusters that stop within `within`, soonest first."""
    workspaces = (
        workspaces_for(user)
        .filter(created_by_id=user.pk, expires_at__isnull=False, expires_at__lte=now + within)
        .exclude(status__in=[*_ENDED_WORKSPACE_STATUSES, WorkspaceStatus.DESTROYING])
    )
    found = [Expiry(ws, ws.expires_at, "time to live ends") for ws in workspaces if ws.expires_at is not None]
    found += [Expiry(d.cluster, d.at, d.why) for d in own_cluster_deadlines(user, now=now, within=within)]
    return sorted(found, key=lambda expiry: expiry.at)


@dataclass(frozen=True)
class WaitingOnYou:
    """What only the user can move on: their runs awaiting someone's approval (to chase) and their workspaces
    that drifted from their plan (to re-apply or destroy)."""

    awaiting_approval: list[Run]
    drifted: list[Workspace]

    def __bool__(self) -> bool:
        return bool(self.awaiting_approval or self.drifted)


def waiting_on(user: AnyUser, *, limit: int = 10) -> WaitingOnYou:
    mine = runs_for(user).filter(created_by_id=user.pk, state=RunState.AWAITING_APPROVAL)
    drifted = workspaces_for(user).filter(created_by_id=user.pk, status=WorkspaceStatus.DRIFTED)
    return WaitingOnYou(
        awaiting_approval=list(mine.order_by("-queued_at", "-pk")[:limit]),
        drifted=list(drifted.order_by("-updated_at", "-pk")[:limit]),
    )


def failed_runs_since(since: datetime) -> int:
    """Runs of every team that failed or errored since `since` (the platform admin's health card)."""
    return Run.objects.filter(state__in=[RunState.FAILED, RunState.ERRORED], finished_at__gte=since).count()


def log_chunks_after(run: Run, after_line: int, *, limit_lines: int = 2000) -> list[RunLogChunk]:
    """The run's chunks holding lines after `after_line` (apps.core.logs.chunks_after), oldest first."""
    return chunks_after(run.log_chunks.all(), after_line, limit_lines=limit_lines)


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


@dataclass(frozen=True)
class Ending:
    """How a workspace ended: the run that destroyed it, who asked (None: the platform, e.g. its TTL) and when."""

    run: Run | None
    requested_by: str
    at: Any
    reason: str


def ending_of(workspace: Workspace) -> Ending | None:
    """For a destroyed workspace: its last applied destroy run and who requested it (from the audit trail, which
    tells a person's destroy from the TTL's); for a forgotten or deleted one, when that happened."""
    if not workspace.has_ended:
        return None
    run = (
        workspace.runs.filter(kind=RunKind.DESTROY, state=RunState.APPLIED).order_by("-finished_at", "-pk").first()
        if workspace.status == "destroyed"
        else None
    )
    target = run if run is not None else workspace
    verbs = (
        ["run.requested_destroy", "run.scheduled_destroy"]
        if run is not None
        else ["workspace.forgotten", "workspace.deleted"]
    )
    event = (
        AuditEvent.objects.filter(target_type=target._meta.label_lower, target_id=str(target.pk), verb__in=verbs)
        .order_by("-created_at")
        .first()
    )
    requested_by = (event.actor_label or "the platform") if event is not None else "the platform"
    at = run.finished_at if run is not None else (event.created_at if event is not None else workspace.updated_at)
    return Ending(run=run, requested_by=requested_by, at=at, reason=run.reason if run is not None else "")


@dataclass(frozen=True)
class FreezeNotice:
    """What the change-freeze banner tells a user: the freeze in force and how many of their teams' runs wait."""

    freeze: ChangeFreeze
    held_runs: int


def freeze_notice_for(user: AnyUser) -> FreezeNotice | None:
    """The banner's data while a freeze holds runs of the user's teams (a freeze is platform-wide, so it holds
    every team's), or None: no freeze, or a user in no team with nothing to hold."""
    freeze = active_freeze()
    if freeze is None or not user.is_authenticated:
        return None
    if not (is_platform_admin(user) or team_ids_for(user)):
        return None
    return FreezeNotice(freeze=freeze, held_runs=runs_for(user).filter(state=RunState.QUEUED).count())


def _live_workspaces(team_id: int) -> QuerySet[Workspace]:
    return Workspace.objects.filter(team_id=team_id).exclude(status__in=["destroyed", "failed", *GONE_STATUSES])


def team_footprint(team_id: int, *, excluding_workspace: int | None = None) -> dict[str, object]:
    """What a team runs now (live workspaces and their estimated hourly cost), for an approver to weigh a
    request against; `gpu_impact` adds the GPU side."""
    live = _live_workspaces(team_id)
    if excluding_workspace is not None:
        live = live.exclude(pk=excluding_workspace)
    hourly = live.aggregate(total=Sum("estimated_hourly_cost"))["total"] or Decimal("0")
    return {"workspaces": live.count(), "hourly": hourly}


@dataclass(frozen=True)
class GpuRequest:
    """The GPUs one set of template parameters asks for: `node_count` (1 if absent) x the instance type's GPUs."""

    instance_type: str
    node_count: int
    gpus_per_node: int

    @property
    def gpus(self) -> int:
        return self.node_count * self.gpus_per_node


@dataclass(frozen=True)
class GpuImpact:
    """A run's GPUs against its team's GPU quota, for the approval box. `cluster_gpus` is what the quota itself
    counts (live clusters); `workspace_gpus` are GPU instances other live workspaces hold through Terraform
    templates, which no quota check sees, so the approver sees them here."""

    request: GpuRequest
    cluster_gpus: int
    workspace_gpus: int
    quota: int

    @property
    def held(self) -> int:
        return self.cluster_gpus + self.workspace_gpus

    @property
    def after(self) -> int:
        return self.held + self.request.gpus

    @property
    def over_by(self) -> int:
        return max(0, self.after - self.quota)

    @property
    def over_quota(self) -> bool:
        return self.over_by > 0


def requested_gpus(parameters: Mapping[str, Any] | None) -> GpuRequest | None:
    """The GPUs template parameters ask for, when they name a GPU instance type of the instance catalog (as
    gpu-training-cluster's `instance_type` and `node_count` do); None for parameters that ask for no GPUs."""
    if not isinstance(parameters, Mapping):
        return None
    instance = load_catalog().get(str(parameters.get("instance_type", "")))
    if instance is None:
        return None
    node_count = parameters.get("node_count", 1)
    if isinstance(node_count, bool) or not isinstance(node_count, int) or node_count < 1:
        return None
    return GpuRequest(instance_type=instance.type, node_count=node_count, gpus_per_node=instance.gpus)


def gpu_impact(run: Run) -> GpuImpact | None:
    """What approving `run` does to its team's GPUs: held now (the run's own workspace left out, as its run
    replaces what it holds) plus the run's request, against the team's effective quota. None when the run
    asks for no GPUs; a destroy releases GPUs, so it has no impact to weigh."""
    request = requested_gpus(run.parameters) if run.kind == RunKind.APPLY else None
    if request is None:
        return None
    others = _live_workspaces(run.team_id).exclude(pk=run.workspace_id).values_list("parameters", flat=True)
    held_by_workspaces = (requested_gpus(parameters) for parameters in others)
    return GpuImpact(
        request=request,
        cluster_gpus=team_gpu_usage(run.team),
        workspace_gpus=sum(held.gpus for held in held_by_workspaces if held is not None),
        quota=effective_quota(run.team).max_gpus,
    )
