"""Probes and heartbeats. Readiness checks dependencies with short timeouts so a probe never hangs."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings
from django.db import connections, transaction
from django.db.models import F
from django.utils import timezone
from kombu.connection import Connection

from apps.ops.models import WorkerHeartbeat


@dataclass
class Readiness:
    checks: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(result == "ok" for result in self.checks.values())


def check_database() -> str:
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready", reported verbatim
        return f"error: {type(exc).__name__}: {exc}"
    return "ok"


def check_broker() -> str:
    timeout = settings.READINESS_TIMEOUT_SECONDS
    try:
        with Connection(settings.CELERY_BROKER_URL, connect_timeout=timeout) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=timeout)
    except Exception as exc:  # noqa: BLE001
        return f"error: {type(exc).__name__}: {exc}"
    return "ok"


def check_readiness() -> Readiness:
    return Readiness(checks={"database": check_database(), "broker": check_broker()})


@transaction.atomic
def record_worker_heartbeat(*, hostname: str) -> WorkerHeartbeat:
    now = timezone.now()
    beat, created = WorkerHeartbeat.objects.get_or_create(hostname=hostname, defaults={"last_seen_at": now, "beats": 1})
    if not created:
        WorkerHeartbeat.objects.filter(pk=beat.pk).update(last_seen_at=now, beats=F("beats") + 1)
        beat.refresh_from_db()
    return beat
