"""Who may read which audit events: managers and admins see their teams' events; superusers (platform
admins) also see events that belong to no team (logins, personal tokens)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from django.db import connection
from django.db.models import Func, Q, QuerySet, TextField
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
    """The verbs of the events the user may read, for the filter list: one DISTINCT query (no select_related
    join, no rows brought into Python), which PostgreSQL answers from the verb index."""
    events = audit_events_for(user).select_related(None)
    return list(events.order_by("verb").values_list("verb", flat=True).distinct())


def exportable_teams_for(user: AnyUser) -> QuerySet[Team]:
    """The teams whose audit evidence `user` may export (the `audit.export` rule, as a queryset)."""
    if is_platform_admin(user):
        return Team.objects.order_by("name")
    return restrict(Team.objects.all(), user, OVERSEE, field="pk").order_by("name")


class _UtcIsoText(Func):
    """A timestamp as ISO 8601 UTC text to the microsecond, formatted by PostgreSQL (no datetime objects)."""

    output_field = TextField()
    template = "to_char(%(expressions)s AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"


def iso_utc(moment: datetime) -> str:
    """The one text form of an instant in evidence files: `2026-01-31T09:05:00.000000Z`."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def evidence_rows(*, team: Team, start: datetime, end: datetime) -> Iterator[tuple[Any, ...]]:
    """The team's events in [start, end) as tuples in EVIDENCE_COLUMNS order, oldest first (ties by id),
    streamed from a server-side cursor. `created_at` comes as `iso_utc` text and `data` as JSON text, made by
    PostgreSQL, so a year of rows is never turned into datetimes and dicts and back (most of the export's time,
    measured in bench/audit_export.py). No authorization here: the export service calls it after `require`."""
    rows = (
        AuditEvent.objects.filter(team=team, created_at__gte=start, created_at__lt=end)
        .order_by("created_at", "id")
        .annotate(data_text=Cast("data", TextField()))
    )
    if connection.vendor != "postgresql":  # SQLite (`make run` without PostgreSQL): format in Python
        plain = rows.values_list(*EVIDENCE_COLUMNS[:-1], "data_text").iterator(chunk_size=EVIDENCE_CHUNK_SIZE)
        return ((row[0], iso_utc(row[1]), *row[2:]) for row in plain)
    columns = ("id", "created_text", *EVIDENCE_COLUMNS[2:-1], "data_text")
    return (
        rows.annotate(created_text=_UtcIsoText("created_at"))
        .values_list(*columns)
        .iterator(chunk_size=EVIDENCE_CHUNK_SIZE)
    )
