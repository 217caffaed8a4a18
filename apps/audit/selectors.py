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
    """The verbs of the events the user may read, for the filter list: one DISTINCT query (no select_related
    join, no rows brought into Python), which PostgreSQL answers from the verb index."""
    events = audit_events_for(user).select_related(None)
    return list(events.order_by("verb").values_list("verb", flat=True).distinct())
