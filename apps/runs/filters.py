"""FilterSets shared by the workspace/run pages and the API. The page sets add choice lists of the user's own
teams and templates (labelled "Any ..." when empty, never `---------`); the API keeps plain slugs."""

from __future__ import annotations

from typing import Any

import django_filters
from django import forms
from django.http import HttpRequest

from apps.accounts.filters import my_teams, team_choice
from apps.runs.models import Run, RunKind, RunState, Workspace, WorkspaceStatus


class WorkspaceFilterSet(django_filters.FilterSet):
    q = django_filters.CharFilter(field_name="name", lookup_expr="icontains", label="Name contains")
    team = django_filters.CharFilter(field_name="team__slug")
    template = django_filters.CharFilter(field_name="template_version__template__slug")
    status = django_filters.ChoiceFilter(choices=WorkspaceStatus.choices, empty_label="Any status")

    class Meta:
        model = Workspace
        fields = ["q", "team", "template", "status"]


class RunFilterSet(django_filters.FilterSet):
    q = django_filters.CharFilter(field_name="workspace__name", lookup_expr="icontains", label="Workspace contains")
    team = django_filters.CharFilter(field_name="team__slug")
    workspace = django_filters.NumberFilter(field_name="workspace_id")
    state = django_filters.ChoiceFilter(choices=RunState.choices, empty_label="Any state")
    kind = django_filters.ChoiceFilter(choices=RunKind.choices, empty_label="Any kind")

    class Meta:
        model = Run
        fields = ["q", "team", "workspace", "state", "kind"]


def _my_templates(request: HttpRequest | None) -> list[tuple[str, str]]:
    """(slug, name) of the templates the user's teams have workspaces of (the only ones a filter could find),
    read through the workspaces: the run engine does not import the catalog."""
    if request is None:
        return []
    rows = (
        Workspace.objects.filter(team__in=my_teams(request))
        .values_list("template_version__template__slug", "template_version__template__name")
        .distinct()
        .order_by("template_version__template__name")
    )
    return list(rows)


class WorkspacePageFilterSet(WorkspaceFilterSet):
    team = team_choice()
    template = django_filters.ChoiceFilter(
        field_name="template_version__template__slug", choices=[], empty_label="Any template", label="Template"
    )

    def __init__(self, *args: Any, request: HttpRequest | None = None, **kwargs: Any) -> None:
        super().__init__(*args, request=request, **kwargs)
        self.filters["template"].extra["choices"] = _my_templates(request)


class RunPageFilterSet(RunFilterSet):
    team = team_choice()
    workspace = django_filters.NumberFilter(field_name="workspace_id", widget=forms.HiddenInput)
