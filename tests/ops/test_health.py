"""Liveness and readiness probes, against the real database and broker (no mocks)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

CLOSED_PORT_BROKER = "redis://127.0.0.1:1/0"


def test_healthz_answers_ok_without_login(client: Any) -> None:
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_healthz_does_not_touch_the_database(client: Any) -> None:
    # No `db` fixture: pytest-django blocks database access, so any query would raise here.
    response = client.get("/healthz")

    assert response.status_code == 200


def test_readyz_is_ok_with_the_real_redis_broker(db: None, client: Any, settings: Any) -> None:
    if not settings.REDIS_URL:
        pytest.skip("needs a Redis broker: set REDIS_URL")
    settings.CELERY_BROKER_URL = settings.REDIS_URL

    response = client.get("/readyz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["checks"] == {"database": "ok", "broker": "ok"}


def test_readyz_returns_503_naming_the_broker_when_it_is_down(db: None, client: Any, settings: Any) -> None:
    settings.CELERY_BROKER_URL = CLOSED_PORT_BROKER

    response = client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["broker"].startswith("error")


def test_readyz_answers_quickly_when_the_broker_is_down(db: None, client: Any, settings: Any) -> None:
    settings.CELERY_BROKER_URL = CLOSED_PORT_BROKER
    settings.READINESS_TIMEOUT_SECONDS = 1.0

    started = time.monotonic()
    response = client.get("/readyz")
    elapsed = time.monotonic() - started

    assert response.status_code == 503
    # A probe must never hang: allow the timeout plus a little slack for one retry and the database check.
    assert elapsed < settings.READINESS_TIMEOUT_SECONDS + 3, f"/readyz took {elapsed:.1f}s"


def test_readyz_is_ok_with_the_serverless_sqlite_broker(db: None, client: Any, settings: Any, tmp_path: Path) -> None:
    settings.CELERY_BROKER_URL = f"sqla+sqlite:///{tmp_path / 'b.sqlite3'}"

    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json()["checks"] == {"database": "ok", "broker": "ok"}
