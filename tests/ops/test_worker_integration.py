"""Broker -> real Celery worker -> database, end to end (PostgreSQL + Redis under `make test`)."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest
from django.test import Client

from apps.ops.models import WorkerHeartbeat
from apps.ops.tasks import record_worker_heartbeat

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def wait_for(predicate: Any, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_worker_runs_the_heartbeat_task_and_readiness_reports_it(celery_worker: Any, client: Client) -> None:
    record_worker_heartbeat.delay("pytest-heartbeat")

    assert wait_for(lambda: WorkerHeartbeat.objects.filter(hostname="pytest-heartbeat").exists())
    body = client.get("/readyz").json()
    assert body["checks"] == {"database": "ok", "broker": "ok"}
    assert "pytest-heartbeat" in body["workers"]


def test_heartbeat_counts_repeat_beats_from_the_same_worker(celery_worker: Any) -> None:
    for _ in range(3):
        record_worker_heartbeat.delay("pytest-repeat")

    assert wait_for(lambda: WorkerHeartbeat.objects.filter(hostname="pytest-repeat", beats=3).exists())


def test_heartbeat_defaults_to_the_worker_hostname(celery_worker: Any) -> None:
    record_worker_heartbeat.delay()
    assert wait_for(lambda: WorkerHeartbeat.objects.filter(hostname=socket.gethostname()).exists())
