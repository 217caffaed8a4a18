"""The Celery app; the beat schedule is the CELERY_BEAT_SCHEDULE setting, so all periodic jobs sit in one place."""

from __future__ import annotations

import os
from typing import Any

from celery import Celery
from celery.signals import worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("paved")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_init.connect
def tune_sqlalchemy_broker(**_: Any) -> None:
    """Poll the server-less SQLite broker every 0.1 s instead of kombu's 1 s default.

    kombu rejects `polling_interval` in broker_transport_options for this transport, so the class attribute is
    the knob that works (measured: ~65 ms p50 enqueue -> start at 0.1 s).
    """
    from django.conf import settings
    from kombu.transport import sqlalchemy

    if settings.CELERY_BROKER_URL.startswith("sqla+"):
        sqlalchemy.Transport.polling_interval = settings.BROKER_POLLING_INTERVAL
