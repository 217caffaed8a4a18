"""POST /api/v1/workspaces/{id}/variables: change a workspace's variables (a plan-and-apply run with the edited
parameters, validated like a launch). Plan and re-apply are `POST /api/v1/workspaces/{id}/runs` with
`kind: plan | apply`."""

from __future__ import annotations

from typing import Any

from django.http import Http404
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.selectors import authenticated
from apps.catalog import services
from apps.catalog.api import EstimateSerializer, estimate_data
from apps.runs.api import RunSerializer
from apps.runs.selectors import workspace_for


class VariablesInputSerializer(serializers.Serializer[Any]):
    parameters = serializers.DictField(help_text="The new parameters, all of them, as the launch takes them.")
    reason = serializers.CharField(required=False, allow_blank=True, max_length=300, default="")
    override_budget = serializers.BooleanField(
        default=False, help_text="Platform admins: change past a budget's guardrail (audited)."
    )


class VariablesOutputSerializer(serializers.Serializer[Any]):
    run = RunSerializer()
    estimate = EstimateSerializer()
    warnings = serializers.ListField(child=serializers.CharField(), help_text="Budget warnings, if any.")


class WorkspaceVariablesView(APIView):
    @extend_schema(
        request=VariablesInputSerializer,
        responses={201: VariablesOutputSerializer},
        summary="Change a workspace's variables: a plan-and-apply run with the edited parameters",
        examples=[
            OpenApiExample(
                "More GPUs",
                request_only=True,
                value={"parameters": {"experiment_name": "resnet-sweep", "gpu_count": 2}, "reason": "Bigger run"},
            ),
        ],
    )
    def post(self, request: Request, pk: int) -> Response:
        workspace = workspace_for(request.user, pk)  # another team's workspace is a 404 before any validation
        if workspace is None:
            raise Http404("No such workspace in your teams.")
        payload = VariablesInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        change = services.change_workspace_variables(
            actor=authenticated(request.user),
            workspace=workspace,
            params=data["parameters"],
            reason=data["reason"],
            request=request._request,
            override_budget=data["override_budget"],
        )
        body = {"run": change.run, "estimate": estimate_data(change.estimate), "warnings": change.warnings}
        return Response(VariablesOutputSerializer(body).data, status=status.HTTP_201_CREATED)
