"""FilterSets shared by the workspace/run pages and the API."""

from __future__ import annotations

import django_filters

from apps.runs.models import Run, RunKind, RunState, Workspace, WorkspaceStatus


class WorkspaceFilterSet(django_filters.FilterSet):
    team = django_filters.CharFilter(field_name="team__slug")
    template = django_filters.CharFilter(field_name="template_version__template__slug")
    status = django_filters.ChoiceFilter(choices=WorkspaceStatus.choices)

    class Meta:
        model = Workspace
        fields = ["team", "template", "status"]


class RunFilterSet(django_filters.FilterSet):
    team = django_filters.CharFilter(field_name="team__slug")
    workspace = django_filters.NumberFilter(field_name="workspace_id")
    state = django_filters.ChoiceFilter(choices=RunState.choices)
    kind = django_filters.ChoiceFilter(choices=RunKind.choices)

    class Meta:
        model = Run
        fields = ["team", "workspace", "state", "kind"]
