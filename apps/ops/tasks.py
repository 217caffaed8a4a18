from __future__ import annotations

import socket

from celery import shared_task

from apps.ops import services


@shared_task(acks_late=True, ignore_result=True)
def record_worker_heartbeat(hostname: str | None = None) -> None:
    services.record_worker_heartbeat(hostname or socket.gethostname())
