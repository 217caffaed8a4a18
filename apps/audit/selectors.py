"""Who may read which audit events: managers and admins see their teams' events; superusers (platform
admins) also see events that belong to no team (logins, personal tokens)."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from apps.accounts.models import OVERSIGHT_ROLES
from apps.accounts.selectors import AnyUser, scope_to_teams, team_ids_for
from apps.audit.models import AuditEvent


def audit_events_for(user: AnyUser) -> QuerySet[AuditEvent]:
    events = AuditEvent.objects.select_related("team", "actor")
    if user.is_authenticated and getattr(user, "is_superuser", False):
        return events.filter(Q(team_id__in=team_ids_for(user, roles=OVERSIGHT_ROLES)) | Q(team__isnull=True))
    return scope_to_teams(events, user, roles=OVERSIGHT_ROLES)


def verbs_for(user: AnyUser) -> list[str]:
    return sorted(set(audit_events_for(user).values_list("verb", flat=True)))
