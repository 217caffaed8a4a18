from __future__ import annotations

import socket

from apps.core.tasks import task
from apps.ops import services


@task(acks_late=True, ignore_result=True)
def record_worker_heartbeat(hostname: str | None = None) -> None:
    services.record_worker_heartbeat(hostname=hostname or socket.gethostname())
