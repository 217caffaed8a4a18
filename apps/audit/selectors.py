"""Who may read which audit events: managers and admins see their teams' events; superusers (platform
admins) also see events that belong to no team (logins, personal tokens)."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from apps.accounts.models import OVERSIGHT_ROLES
from apps.accounts.permissions import OVERSEE, AnyUser, is_platform_admin, restrict, team_ids_for
from apps.audit.models import AuditEvent


def audit_events_for(user: AnyUser) -> QuerySet[AuditEvent]:
    events = AuditEvent.objects.select_related("team", "actor")
    if is_platform_admin(user):
        return events.filter(Q(team_id__in=team_ids_for(user, roles=OVERSIGHT_ROLES)) | Q(team__isnull=True))
    return restrict(events, user, OVERSEE)


def verbs_for(user: AnyUser) -> list[str]:
    return sorted(set(audit_events_for(user).values_list("verb", flat=True)))
