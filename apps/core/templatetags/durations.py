"""`{{ seconds|duration }}` and `{{ started|elapsed:finished }}`: durations as `apps.core.durations` writes them."""

from __future__ import annotations

from datetime import datetime, timedelta

from django import template
from django.utils import timezone

from apps.core.durations import elapsed as elapsed_between
from apps.core.durations import format_duration

register = template.Library()


@register.filter
def duration(value: float | timedelta | None) -> str:
    return format_duration(value)


@register.filter
def elapsed(start: datetime | None, end: datetime | None = None) -> str:
    return elapsed_between(start, end, now=timezone.now())
