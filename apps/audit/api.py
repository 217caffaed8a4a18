from __future__ import annotations

from django.db.models import QuerySet
from rest_framework import permissions, serializers, viewsets
from rest_framework.request import Request
from rest_framework.views import APIView

from apps.accounts.models import Team
from apps.accounts.selectors import is_team_overseer
from apps.audit.filters import AuditEventFilterSet
from apps.audit.models import AuditEvent
from apps.audit.selectors import audit_events_for


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
