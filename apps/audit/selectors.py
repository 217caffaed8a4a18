"""Who may read which audit events: managers and admins see their teams' events; superusers (platform
admins) also see events that belong to no team (logins, personal tokens)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from django.db.models import Q, QuerySet, TextField
from django.db.models.functions import Cast

from apps.accounts.models import OVERSIGHT_ROLES, Team
from apps.accounts.permissions import OVERSEE, AnyUser, is_platform_admin, restrict, team_ids_for
from apps.audit.models import AuditEvent

# The columns of an evidence export, in file order; `data` last: the widest, and the only nested one.
EVIDENCE_COLUMNS = (
    "id",
    "created_at",
    "actor_id",
    "actor_label",
    "verb",
    "target_type",
    "target_id",
    "target_label",
    "ip_address",
    "user_agent",
    "data",
)
EVIDENCE_CHUNK_SIZE = 5000


def audit_events_for(user: AnyUser) -> QuerySet[AuditEvent]:
    events = AuditEvent.objects.select_related("team", "actor")
    if is_platform_admin(user):
        return events.filter(Q(team_id__in=team_ids_for(user, roles=OVERSIGHT_ROLES)) | Q(team__isnull=True))
    return restrict(events, user, OVERSEE)


def verbs_for(user: AnyUser) -> list[str]:
    return sorted(set(audit_events_for(user).values_list("verb", flat=True)))


def exportable_teams_for(user: AnyUser) -> QuerySet[Team]:
    """The teams whose audit evidence `user` may export (the `audit.export` rule, as a queryset)."""
    if is_platform_admin(user):
        return Team.objects.order_by("name")
    return restrict(Team.objects.all(), user, OVERSEE, field="pk").order_by("name")


def evidence_rows(*, team: Team, start: datetime, end: datetime) -> Iterator[tuple[Any, ...]]:
    """The team's events in [start, end) as tuples in EVIDENCE_COLUMNS order, oldest first (ties by id),
    streamed from a server-side cursor. `data` comes as the database's JSON text, so it is never decoded and
    re-encoded row by row. No authorization here: callers are the export service, after `require`."""
    rows = (
        AuditEvent.objects.filter(team=team, created_at__gte=start, created_at__lt=end)
        .order_by("created_at", "id")
        .annotate(data_text=Cast("data", TextField()))
        .values_list(*EVIDENCE_COLUMNS[:-1], "data_text")
    )
    return rows.iterator(chunk_size=EVIDENCE_CHUNK_SIZE)
