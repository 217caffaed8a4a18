from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from apps.ops.models import WorkerHeartbeat


def live_workers() -> QuerySet[WorkerHeartbeat]:
    """Workers seen within three heartbeat periods."""
    horizon = timezone.now() - timedelta(seconds=3 * settings.WORKER_HEARTBEAT_SECONDS)
    return WorkerHeartbeat.objects.filter(last_seen_at__gte=horizon)
