from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts.selectors import authenticated
from apps.core.limits import MAX_TTL_HOURS
from apps.core.logs import log_page
from apps.core.query import MAX_OFFSET, read_query
from apps.runs import services
from apps.runs.filters import RunFilterSet, WorkspaceFilterSet
from apps.runs.models import Run, RunKind, Workspace
from apps.runs.selectors import listed_workspaces_for, masked_outputs, runs_for, workspaces_for


class RunSerializer(serializers.ModelSerializer[Run]):
    team = serializers.CharField(source="team.slug", read_only=True)
    template = serializers.CharField(source="template_version.template.slug", read_only=True)
    version = serializers.CharField(source="template_version.version", read_only=True)
    created_by = serializers.CharField(source="created_by.username", read_only=True)

    class Meta:
        model = Run
        fields = [
            "id", "workspace", "team", "kind", "state", "state_reason", "template", "version", "parameters",
            "reason", "created_by", "queued_at", "started_at", "finished_at", "plan_summary",
            "estimated_hourly_cost", "needs_approval", "log_lines", "retry_of",
        ]  # fmt: skip
        read_only_fields = fields


class WorkspaceSerializer(serializers.ModelSerializer[Workspace]):
    team = serializers.CharField(source="team.slug", read_only=True)
    template = serializers.CharField(source="template_version.template.slug", read_only=True)
    version = serializers.CharField(source="template_version.version", read_only=True)
    created_by = serializers.CharField(source="created_by.username", read_only=True)
    outputs = serializers.SerializerMethodField(help_text="Sensitive values are masked.")

    class Meta:
        model = Workspace
        fields = [
            "id", "team", "name", "template", "version", "parameters", "status", "created_by", "created_at",
            "expires_at", "estimated_hourly_cost", "currency", "outputs",
        ]  # fmt: skip
        read_only_fields = fields

    def get_outputs(self, workspace: Workspace) -> dict[str, Any]:
        return masked_outputs(workspace)


class RunRequestSerializer(serializers.Serializer[Any]):
    kind = serializers.ChoiceField(
        choices=[RunKind.APPLY, RunKind.PLAN, RunKind.DESTROY, RunKind.DRIFT_CHECK],
        help_text="apply: plan and apply again; plan: a speculative plan that applies nothing; destroy; drift_check.",
    )
    confirm = serializers.CharField(required=False, allow_blank=True, help_text="Destroy: the workspace name.")
    reason = serializers.CharField(required=False, allow_blank=True, max_length=300, default="")


class ExtendSerializer(serializers.Serializer[Any]):
    hours = serializers.IntegerField(
        min_value=1, max_value=MAX_TTL_HOURS, help_text="New time to live from now, at most the template's maximum."
    )


class ForceDeleteSerializer(serializers.Serializer[Any]):
    confirm = serializers.CharField(help_text="The workspace's name, to confirm.", max_length=40)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=300, default="")


class DecisionSerializer(serializers.Serializer[Any]):
    comment = serializers.CharField(required=False, allow_blank=True, max_length=500, default="")


class LogQuerySerializer(serializers.Serializer[Any]):
    after = serializers.IntegerField(
        min_value=0, max_value=MAX_OFFSET, default=0, help_text="Return lines after this line number."
    )


class LogSerializer(serializers.Serializer[Any]):
    after = serializers.IntegerField()
    next = serializers.IntegerField(help_text="Pass as `after` to get the following lines.")
    lines = serializers.ListField(child=serializers.CharField())
    complete = serializers.BooleanField(help_text="True when the run is over and every line was returned.")


class WorkspaceViewSet(viewsets.ReadOnlyModelViewSet[Workspace]):
    """Workspaces of your teams: what was provisioned from which template version, with which parameters."""

    serializer_class = WorkspaceSerializer
    filterset_class = WorkspaceFilterSet
    search_fields = ["name", "template_version__template__slug"]
    ordering_fields = ["created_at", "name"]

    def get_queryset(self) -> QuerySet[Workspace]:
        if self.action == "list":  # forgotten and deleted workspaces only when `?status=` asks for them
            return listed_workspaces_for(self.request.user, status=self.request.query_params.get("status"))
        return workspaces_for(self.request.user)

    @extend_schema(
        request=RunRequestSerializer,
        responses={201: RunSerializer},
        summary="Queue a run: re-apply, a speculative plan, a destroy or a drift check",
    )
    @action(detail=True, methods=["post"])
    def runs(self, request: Request, pk: str) -> Response:
        workspace = self.get_object()
        payload = RunRequestSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        actor = authenticated(request.user)
        data = payload.validated_data
        if data["kind"] == RunKind.DESTROY:
            run = services.request_destroy(
                actor=actor, workspace=workspace, confirm_name=data.get("confirm", ""), request=request._request
            )
        else:
            run = services.queue_run(
                actor=actor, workspace=workspace, kind=data["kind"], reason=data["reason"], request=request._request
            )
        return Response(RunSerializer(run).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=ExtendSerializer, responses=WorkspaceSerializer, summary="Extend the time to live")
    @action(detail=True, methods=["post"])
    def extend(self, request: Request, pk: str) -> Response:
        found = self.get_object()  # another team's workspace is a 404 before any validation
        payload = ExtendSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        workspace = services.extend_ttl(
            actor=authenticated(request.user),
            workspace=found,
            hours=payload.validated_data["hours"],
            request=request._request,
        )
        return Response(WorkspaceSerializer(workspace).data)

    @extend_schema(
        request=None,
        responses=WorkspaceSerializer,
        summary="Forget a workspace that never applied anything (nothing to destroy)",
    )
    @action(detail=True, methods=["post"])
    def forget(self, request: Request, pk: str) -> Response:
        workspace = services.forget_workspace(
            actor=authenticated(request.user), workspace=self.get_object(), request=request._request
        )
        return Response(WorkspaceSerializer(workspace).data)

    @extend_schema(
        request=ForceDeleteSerializer,
        responses=WorkspaceSerializer,
        summary="Force-delete a workspace whose destroy keeps failing (platform admins; confirm with its name)",
    )
    @action(detail=True, methods=["post"], url_path="force-delete")
    def force_delete(self, request: Request, pk: str) -> Response:
        workspace = self.get_object()
        payload = ForceDeleteSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        deleted = services.force_delete_workspace(
            actor=authenticated(request.user),
            workspace=workspace,
            confirm_name=payload.validated_data["confirm"],
            reason=payload.validated_data["reason"],
            request=request._request,
        )
        return Response(WorkspaceSerializer(deleted).data)


class RunViewSet(viewsets.ReadOnlyModelViewSet[Run]):
    """Runs of your teams' workspaces, newest first."""

    serializer_class = RunSerializer
    filterset_class = RunFilterSet
    search_fields = ["workspace__name"]
    ordering_fields = ["created_at", "queued_at"]

    def get_queryset(self) -> QuerySet[Run]:
        return runs_for(self.request.user)

    def _act(self, request: Request, act: Any) -> Response:
        run = self.get_object()
        payload = DecisionSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        act(authenticated(request.user), run, payload.validated_data["comment"], request._request)
        run.refresh_from_db()
        return Response(RunSerializer(run).data)

    @extend_schema(request=DecisionSerializer, responses=RunSerializer, summary="Approve a planned run (managers)")
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk: str) -> Response:
        return self._act(request, lambda a, r, c, q: services.approve_run(actor=a, run=r, comment=c, request=q))

    @extend_schema(request=DecisionSerializer, responses=RunSerializer, summary="Reject a planned run (managers)")
    @action(detail=True, methods=["post"])
    def reject(self, request: Request, pk: str) -> Response:
        return self._act(request, lambda a, r, c, q: services.reject_run(actor=a, run=r, comment=c, request=q))

    @extend_schema(request=None, responses=RunSerializer, summary="Cancel a queued or running run")
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str) -> Response:
        return self._act(request, lambda a, r, c, q: services.cancel_run(actor=a, run=r, request=q))

    @extend_schema(request=None, responses={201: RunSerializer}, summary="Retry a failed, errored or cancelled run")
    @action(detail=True, methods=["post"])
    def retry(self, request: Request, pk: str) -> Response:
        retry = services.retry_run(actor=authenticated(request.user), run=self.get_object(), request=request._request)
        return Response(RunSerializer(retry).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        responses=LogSerializer, parameters=[LogQuerySerializer], summary="Terraform output, from a line offset"
    )
    @action(detail=True, methods=["get"], pagination_class=None, filter_backends=[])
    def log(self, request: Request, pk: str) -> Response:
        run = self.get_object()
        after = read_query(request, LogQuerySerializer)["after"]
        body = log_page(run.log_chunks.all(), after, finished=run.is_terminal, total_lines=run.log_lines)
        return Response(LogSerializer(body).data)
