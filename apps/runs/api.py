from __future__ import annotations

from django.db.models import QuerySet
from rest_framework import serializers, viewsets

from apps.runs.filters import RunFilterSet, WorkspaceFilterSet
from apps.runs.models import Run, Workspace
from apps.runs.selectors import runs_for, workspaces_for


class RunSerializer(serializers.ModelSerializer[Run]):
    team = serializers.CharField(source="team.slug", read_only=True)
    template = serializers.CharField(source="template_version.template.slug", read_only=True)
    version = serializers.CharField(source="template_version.version", read_only=True)
    created_by = serializers.CharField(source="created_by.username", read_only=True)

    class Meta:
        model = Run
        fields = [
            "id", "workspace", "team", "kind", "state", "state_reason", "template", "version", "parameters",
            "reason", "created_by", "queued_at", "started_at", "finished_at",
        ]  # fmt: skip
        read_only_fields = fields


class WorkspaceSerializer(serializers.ModelSerializer[Workspace]):
    team = serializers.CharField(source="team.slug", read_only=True)
    template = serializers.CharField(source="template_version.template.slug", read_only=True)
    version = serializers.CharField(source="template_version.version", read_only=True)
    created_by = serializers.CharField(source="created_by.username", read_only=True)

    class Meta:
        model = Workspace
        fields = [
            "id", "team", "name", "template", "version", "parameters", "status", "created_by", "created_at",
            "expires_at", "estimated_hourly_cost", "currency",
        ]  # fmt: skip
        read_only_fields = fields


class WorkspaceViewSet(viewsets.ReadOnlyModelViewSet[Workspace]):
    """Workspaces of your teams: what was provisioned from which template version, with which parameters."""

    serializer_class = WorkspaceSerializer
    filterset_class = WorkspaceFilterSet
    search_fields = ["name", "template_version__template__slug"]
    ordering_fields = ["created_at", "name"]

    def get_queryset(self) -> QuerySet[Workspace]:
        return workspaces_for(self.request.user)


class RunViewSet(viewsets.ReadOnlyModelViewSet[Run]):
    """Runs of your teams' workspaces, newest first."""

    serializer_class = RunSerializer
    filterset_class = RunFilterSet
    search_fields = ["workspace__name"]
    ordering_fields = ["created_at", "queued_at"]

    def get_queryset(self) -> QuerySet[Run]:
        return runs_for(self.request.user)
