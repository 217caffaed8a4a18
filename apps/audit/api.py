from __future__ import annotations

import json
from typing import Any

from django.db.models import QuerySet
from django.http import FileResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import permissions, renderers, serializers, viewsets
from rest_framework.request import Request
from rest_framework.views import APIView

from apps.accounts.models import Team
from apps.accounts.selectors import is_team_overseer
from apps.audit.evidence import day_start, export_evidence, team_to_export
from apps.audit.filters import AuditEventFilterSet
from apps.audit.models import AuditEvent
from apps.audit.selectors import audit_events_for
from apps.core.openapi import problem_responses
from apps.core.query import read_query


class IsTeamOverseer(permissions.BasePermission):
    message = "Only team managers and admins may read the audit log."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return bool(request.user.is_authenticated and is_team_overseer(request.user))


class AuditEventSerializer(serializers.ModelSerializer[AuditEvent]):
    team: serializers.SlugRelatedField[Team] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True, allow_null=True, help_text="Null for events of no team (logins, tokens)."
    )
    actor = serializers.CharField(source="actor_label", read_only=True)

    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "created_at",
            "actor",
            "team",
            "verb",
            "target_type",
            "target_id",
            "target_label",
            "data",
            "ip_address",
        ]
        read_only_fields = fields


class AuditEventViewSet(viewsets.ReadOnlyModelViewSet[AuditEvent]):
    """The append-only audit trail of the teams you manage. Filter by team, actor, verb and time range."""

    serializer_class = AuditEventSerializer
    permission_classes = [permissions.IsAuthenticated, IsTeamOverseer]
    filterset_class = AuditEventFilterSet
    search_fields = ["verb", "actor_label", "target_label"]
    ordering_fields = ["created_at"]

    def get_queryset(self) -> QuerySet[AuditEvent]:
        return audit_events_for(self.request.user)


class ZipRenderer(renderers.BaseRenderer):
    """Lets a client ask for `Accept: application/zip`; problem details still come as JSON text."""

    media_type = "application/zip"
    format = "zip"
    charset = None
    render_style = "binary"

    def render(self, data: Any, accepted_media_type: str | None = None, renderer_context: Any = None) -> bytes:
        return data if isinstance(data, bytes) else json.dumps(data).encode()


class EvidenceQuerySerializer(serializers.Serializer[Any]):
    team = serializers.SlugField(help_text="The team (slug) whose audit trail to export.")
    start = serializers.DateField(help_text="First day, inclusive (00:00 UTC).")
    end = serializers.DateField(help_text="Day after the last, exclusive (00:00 UTC); today at the latest.")


class EvidenceExportView(APIView):
    """A team's audit trail over a period as a ZIP: events.csv, events.json and manifest.json (SHA-256 of each
    data file). The manifest's own SHA-256 is in the `X-Evidence-Manifest-SHA256` header and the audit trail."""

    renderer_classes = [renderers.JSONRenderer, ZipRenderer]

    @extend_schema(
        parameters=[EvidenceQuerySerializer],
        responses={
            (200, "application/zip"): OpenApiResponse(
                OpenApiTypes.BINARY, description="audit-<team>-<start>-<end>.zip (attachment)"
            )
        },
        summary="Export a team's audit evidence (CSV + JSON + manifest with SHA-256s) as a ZIP",
    )
    @problem_responses(404)  # an unknown ?format= (content negotiation) is a 404
    def get(self, request: Request) -> FileResponse:
        team = team_to_export(actor=request.user, slug=request.query_params.get("team", ""))  # 403 before parsing
        query = read_query(request, EvidenceQuerySerializer)
        bundle = export_evidence(
            actor=request.user,
            team=team,
            start=day_start(query["start"]),
            end=day_start(query["end"]),
            request=request._request,
        )
        response = FileResponse(
            bundle.file, as_attachment=True, filename=bundle.filename, content_type="application/zip"
        )
        response["Content-Length"] = str(bundle.size)
        response["X-Evidence-Manifest-SHA256"] = bundle.manifest_sha256
        return response
