from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from apps.core.htmx import htmx_partial
from apps.runs.filters import RunFilterSet, WorkspaceFilterSet
from apps.runs.selectors import runs_for, workspace_for, workspaces_for

PAGE_SIZE = 50


@login_required
def workspace_list_view(request: HttpRequest) -> HttpResponse:
    filterset = WorkspaceFilterSet(request.GET or None, queryset=workspaces_for(request.user))
    page = Paginator(filterset.qs, PAGE_SIZE).get_page(request.GET.get("page"))
    template = "runs/partials/workspace_table.html" if htmx_partial(request) else "runs/workspace_list.html"
    return render(request, template, {"filterset": filterset, "page": page})


@login_required
def workspace_detail_view(request: HttpRequest, workspace_id: int) -> HttpResponse:
    workspace = workspace_for(request.user, workspace_id)
    if workspace is None:
        raise Http404("No such workspace in your teams.")
    runs = runs_for(request.user).filter(workspace=workspace)
    return render(request, "runs/workspace_detail.html", {"workspace": workspace, "runs": runs})


@login_required
def run_list_view(request: HttpRequest) -> HttpResponse:
    filterset = RunFilterSet(request.GET or None, queryset=runs_for(request.user))
    page = Paginator(filterset.qs, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "runs/run_list.html", {"filterset": filterset, "page": page})
