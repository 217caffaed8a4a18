"""Reads of the platform's own health: worker heartbeats, the work waiting for them, the broker's queue."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone
from kombu.connection import Connection

from apps.ops.models import WorkerHeartbeat
from apps.runs.models import ChangeFreeze, Run, RunState
from apps.runs.selectors import active_freeze, failed_runs_since
from apps.training.models import JobState, TrainingJob


def live_workers() -> QuerySet[WorkerHeartbeat]:
    """Workers seen within three heartbeat periods."""
    horizon = timezone.now() - timedelta(seconds=3 * settings.WORKER_HEARTBEAT_SECONDS)
    return WorkerHeartbeat.objects.filter(last_seen_at__gte=horizon)


def broker_queue_depth(queue: str = "celery") -> int | None:
    """Messages waiting in the broker's default queue, asked with the readiness probe's short timeout (None: the
    broker did not answer). Not `celery inspect`: that waits a second for every worker to reply."""
    timeout = settings.READINESS_TIMEOUT_SECONDS
    try:
        with Connection(settings.CELERY_BROKER_URL, connect_timeout=timeout) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=timeout)
            try:
                return int(conn.default_channel.queue_declare(queue=queue, passive=True).message_count)
            except conn.channel_errors:  # the queue was never declared or is empty and gone: nothing waits
                return 0
    except Exception:  # noqa: BLE001 - an unreachable broker is what the card reports, not an error page
        return None


@dataclass(frozen=True)
class PlatformHealth:
    """The platform admin's home card: are workers alive, how much work waits, is a freeze on, what failed."""

    workers: list[WorkerHeartbeat]
    queued_runs: int
    queued_jobs: int
    broker_messages: int | None
    freeze: ChangeFreeze | None
    failed_runs_today: int


def platform_health(*, now: datetime) -> PlatformHealth:
    today = now.astimezone(timezone.get_current_timezone()).replace(hour=0, minute=0, second=0, microsecond=0)
    return PlatformHealth(
        workers=list(live_workers()),
        queued_runs=Run.objects.filter(state=RunState.QUEUED).count(),
        queued_jobs=TrainingJob.objects.filter(state=JobState.QUEUED).count(),
        broker_messages=broker_queue_depth(),
        freeze=active_freeze(),
        failed_runs_today=failed_runs_since(today),
    )
