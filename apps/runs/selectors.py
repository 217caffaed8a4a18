"""Reads of workspaces and runs, scoped to the caller's teams."""

from __future__ import annotations

from django.db.models import QuerySet

from apps.accounts.selectors import AnyUser, scope_to_teams
from apps.runs.models import Run, Workspace


def workspaces_for(user: AnyUser) -> QuerySet[Workspace]:
    workspaces = Workspace.objects.select_related("team", "template_version__template", "created_by")
    return scope_to_teams(workspaces, user)


def runs_for(user: AnyUser) -> QuerySet[Run]:
    runs = Run.objects.select_related("workspace", "team", "template_version__template", "created_by")
    return scope_to_teams(runs, user)


def workspace_for(user: AnyUser, workspace_id: int) -> Workspace | None:
    return workspaces_for(user).filter(pk=workspace_id).first()
