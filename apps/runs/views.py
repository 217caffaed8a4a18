"""Workspace and run pages. The run page follows Terraform's output live: htmx polls `?after=<line>` and
appends new lines; polling stops when the run is terminal. Actions post to one service each."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from apps.accounts.permissions import can
from apps.accounts.selectors import authenticated
from apps.core.errors import ApplicationError
from apps.core.htmx import htmx_partial
from apps.core.lists import list_page
from apps.costs.selectors import workspace_cost
from apps.runs import selectors, services
from apps.runs.filters import RunPageFilterSet, WorkspacePageFilterSet
from apps.runs.models import Run, RunKind, RunLogChunk, Workspace
from apps.runs.services.logs import iter_log_text

# The workspace page's run buttons: action -> (run kind, reason shown on the run).
WORKSPACE_RUNS = {
    "plan": (RunKind.PLAN, "Speculative plan requested: nothing is applied."),
    "apply": (RunKind.APPLY, "Re-apply requested."),
}


def _workspace_or_404(request: HttpRequest, workspace_id: int) -> Workspace:
    workspace = selectors.workspace_for(request.user, workspace_id)
    if workspace is None:
        raise Http404("No such workspace in your teams.")
    return workspace


def _run_or_404(request: HttpRequest, run_id: int) -> Run:
    run = selectors.run_for(request.user, run_id)
    if run is None:
        raise Http404("No such run in your teams.")
    return run


@login_required
def workspace_list_view(request: HttpRequest) -> HttpResponse:
    listed = selectors.listed_workspaces_for(request.user, status=request.GET.get("status"))
    filterset = WorkspacePageFilterSet(request.GET or None, queryset=listed, request=request)
    page = list_page(request, filterset.qs)
    template = "runs/partials/workspace_table.html" if htmx_partial(request) else "runs/workspace_list.html"
    return render(request, template, {"filterset": filterset, "page": page})


@login_required
def workspace_detail_view(request: HttpRequest, workspace_id: int) -> HttpResponse:
    workspace = _workspace_or_404(request, workspace_id)
    runs = selectors.runs_for(request.user).filter(workspace=workspace)
    latest = runs.first()
    context = {
        "workspace": workspace,
        "runs": runs,
        "outputs": selectors.masked_outputs(workspace),
        "can_force_delete": can(request.user, "workspace.force_delete", workspace) and not workspace.is_gone,
        "can_operate": can(request.user, "workspace.operate", workspace),
        "idle": latest is None or latest.is_terminal,
        "ending": selectors.ending_of(workspace),
        "estimate_vs_actual": workspace_cost(workspace=workspace, now=timezone.now()),
    }
    return render(request, "runs/workspace_detail.html", context)


@login_required
def run_list_view(request: HttpRequest) -> HttpResponse:
    filterset = RunPageFilterSet(request.GET or None, queryset=selectors.runs_for(request.user), request=request)
    page = list_page(request, filterset.qs)
    if htmx_partial(request):
        return render(request, "runs/partials/run_table.html", {"filterset": filterset, "page": page})
    approvals = selectors.approvals_waiting_for(request.user)
    return render(request, "runs/run_list.html", {"filterset": filterset, "page": page, "approvals": approvals})


def _run_context(request: HttpRequest, run: Run) -> dict[str, object]:
    approval = getattr(run, "approval", None)
    footprint = gpus = None
    if approval is not None:
        footprint = selectors.team_footprint(run.team_id, excluding_workspace=run.workspace_id)
        gpus = selectors.gpu_impact(run)
    return {
        "run": run,
        "approval": approval,
        "can_approve": selectors.can_approve(request.user, run),
        "footprint": footprint,
        "gpu_impact": gpus,
    }


def _last_line(chunks: list[RunLogChunk], default: int) -> int:
    """Number of the last line in `chunks`, or `default` when there are none."""
    return chunks[-1].first_line + chunks[-1].line_count - 1 if chunks else default


@login_required
def run_detail_view(request: HttpRequest, run_id: int) -> HttpResponse:
    run = _run_or_404(request, run_id)
    chunks = selectors.log_tail(run)
    context = {
        **_run_context(request, run),
        "chunks": chunks,
        "first_line": chunks[0].first_line if chunks else 1,
        # The poller continues after the last line shown, not after `run.log_lines`: the writer stores a chunk
        # before it bumps that counter, so the counter can lag the chunks this page just rendered.
        "last_line": _last_line(chunks, 0),
    }
    return render(request, "runs/run_detail.html", context)


@login_required
def run_status_view(request: HttpRequest, run_id: int) -> HttpResponse:
    """The run header (state, stage, elapsed time, approval box), refreshed by htmx while the run is live."""
    run = _run_or_404(request, run_id)
    return render(request, "runs/partials/run_status.html", _run_context(request, run))


@login_required
def run_log_view(request: HttpRequest, run_id: int) -> HttpResponse:
    """New lines after `?after=N` (appended by the poller), or older lines before `?before=N` (on demand)."""
    run = _run_or_404(request, run_id)
    before = request.GET.get("before")
    if before is not None and before.isdigit():
        chunks = selectors.log_chunks_before(run, int(before))
        return render(request, "runs/partials/log_older.html", {"run": run, "chunks": chunks})
    raw_after = request.GET.get("after", "0")
    after = int(raw_after) if raw_after.isdigit() else 0
    chunks = selectors.log_chunks_after(run, after)
    context = {"run": run, "chunks": chunks, "last_line": _last_line(chunks, after)}
    return render(request, "runs/partials/log_lines.html", context)


@login_required
def run_log_download_view(request: HttpRequest, run_id: int) -> StreamingHttpResponse:
    run = _run_or_404(request, run_id)
    response = StreamingHttpResponse(iter_log_text(run=run), content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="run-{run.pk}.log"'
    return response


def _act(request: HttpRequest, action: str, run: Run) -> None:
    actor = authenticated(request.user)
    comment = request.POST.get("comment", "")
    try:
        if action == "approve":
            services.approve_run(actor=actor, run=run, comment=comment, request=request)
            messages.success(request, f"Run #{run.pk} approved; it is being applied.")
        elif action == "reject":
            services.reject_run(actor=actor, run=run, comment=comment, request=request)
            messages.success(request, f"Run #{run.pk} rejected; nothing was applied.")
        elif action == "cancel":
            services.cancel_run(actor=actor, run=run, request=request)
            messages.success(request, f"Run #{run.pk} is being cancelled.")
        elif action == "retry":
            retry = services.retry_run(actor=actor, run=run, request=request)
            messages.success(request, f"Run #{retry.pk} queued as a retry of #{run.pk}.")
        else:
            raise Http404("Unknown action.")
    except ApplicationError as exc:
        messages.error(request, exc.message)


@require_POST
@login_required
def run_action_view(request: HttpRequest, run_id: int, action: str) -> HttpResponse:
    run = _run_or_404(request, run_id)
    _act(request, action, run)
    return redirect("runs:run-detail", run_id=run.pk)


@require_POST
@login_required
def workspace_action_view(request: HttpRequest, workspace_id: int, action: str) -> HttpResponse:
    workspace = _workspace_or_404(request, workspace_id)
    actor = authenticated(request.user)
    if action == "extend":
        return _extend(request, actor, workspace)
    if action in {"forget", "force-delete"}:
        return _remove(request, actor, workspace, action)
    try:
        if action == "destroy":
            run = services.request_destroy(
                actor=actor, workspace=workspace, confirm_name=request.POST.get("confirm", ""), request=request
            )
        elif action in WORKSPACE_RUNS:
            kind, reason = WORKSPACE_RUNS[action]
            run = services.queue_run(actor=actor, workspace=workspace, kind=kind, reason=reason, request=request)
        else:
            raise Http404("Unknown action.")
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("runs:workspace-detail", workspace_id=workspace.pk)
    messages.success(request, f"Run #{run.pk} queued.")
    return redirect("runs:run-detail", run_id=run.pk)


def _extend(request: HttpRequest, actor: User, workspace: Workspace) -> HttpResponse:
    hours = request.POST.get("hours", "")
    try:
        extended = services.extend_ttl(
            actor=actor, workspace=workspace, hours=int(hours) if hours.isdigit() else 0, request=request
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"{extended.name} now expires at {extended.expires_at:%Y-%m-%d %H:%M} UTC.")
    return redirect("runs:workspace-detail", workspace_id=workspace.pk)


def _remove(request: HttpRequest, actor: User, workspace: Workspace, action: str) -> HttpResponse:
    """Forget (confirmed by a checkbox) or force-delete (confirmed by the typed name); back to the list after."""
    try:
        if action == "forget":
            if request.POST.get("confirm") != "yes":
                messages.error(request, f"Tick the box to confirm that {workspace.name} should be forgotten.")
                return redirect("runs:workspace-detail", workspace_id=workspace.pk)
            services.forget_workspace(actor=actor, workspace=workspace, request=request)
            messages.success(request, f"{workspace.name} is forgotten; its name is free for a new launch.")
        else:
            services.force_delete_workspace(
                actor=actor,
                workspace=workspace,
                confirm_name=request.POST.get("confirm", ""),
                reason=request.POST.get("reason", "")[:300],
                request=request,
            )
            messages.success(request, f"{workspace.name} was force-deleted; its state is kept in the audit log.")
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("runs:workspace-detail", workspace_id=workspace.pk)
    return redirect("runs:workspace-list")


@require_POST
@login_required
def change_freeze_view(request: HttpRequest) -> HttpResponse:
    try:
        freeze = services.set_change_freeze(
            actor=authenticated(request.user),
            active=request.POST.get("active") == "1",
            reason=request.POST.get("reason", ""),
            request=request,
        )
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, str(freeze).capitalize() + ".")
    return redirect("admin:index")
