"""Counting catalog template page views (the top of the template funnel KPIs): one row per template, team and
UTC day, incremented in place, so a busy page costs one UPDATE per view and never a row per view."""

from __future__ import annotations

from datetime import UTC, datetime

from django.db.models import F
from django.utils import timezone

from apps.accounts.models import Team
from apps.catalog.models import Template, TemplateViewDay


def record_template_view(*, template: Template, team: Team | None, now: datetime | None = None) -> None:
    """Add one view of `template` by a member of `team` (None: a viewer without a team) on today's UTC day.
    Not audited: a page view changes nothing."""
    day = (now or timezone.now()).astimezone(UTC).date()
    rows = TemplateViewDay.objects.filter(template=template, team=team, day=day)
    if rows.update(views=F("views") + 1):
        return
    _, created = TemplateViewDay.objects.get_or_create(template=template, team=team, day=day, defaults={"views": 1})
    if not created:  # another request created the row between the update and the insert
        rows.update(views=F("views") + 1)
