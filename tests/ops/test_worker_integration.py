"""Broker -> real Celery worker -> database, end to end (PostgreSQL + Redis under `make test`)."""

from __future__ import annotations

import socket
from typing import Any

import pytest
from django.test import Client

from apps.ops.models import WorkerHeartbeat
from apps.ops.tasks import record_worker_heartbeat
from tests.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_worker_runs_the_heartbeat_task_and_readiness_reports_it(celery_worker: Any, client: Client) -> None:
    record_worker_heartbeat.delay("pytest-heartbeat")

    wait_for(
        lambda: WorkerHeartbeat.objects.filter(hostname="pytest-heartbeat").exists(),
        timeout=20,
        message="the worker's heartbeat row",
    )
    body = client.get("/readyz").json()
    assert body["checks"] == {"database": "ok", "broker": "ok"}
    assert "pytest-heartbeat" in body["workers"]


def test_heartbeat_counts_repeat_beats_from_the_same_worker(celery_worker: Any) -> None:
    for _ in range(3):
        record_worker_heartbeat.delay("pytest-repeat")

    wait_for(
        lambda: WorkerHeartbeat.objects.filter(hostname="pytest-repeat", beats=3).exists(),
        timeout=20,
        message="three beats counted on one heartbeat row",
    )


def test_heartbeat_defaults_to_the_worker_hostname(celery_worker: Any) -> None:
    record_worker_heartbeat.delay()
    wait_for(
        lambda: WorkerHeartbeat.objects.filter(hostname=socket.gethostname()).exists(),
        timeout=20,
        message="a heartbeat row under the worker's hostname",
    )
