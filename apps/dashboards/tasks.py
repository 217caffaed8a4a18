"""Celery tasks of the dashboards: each calls one service."""

from __future__ import annotations

from apps.core.tasks import task
from apps.dashboards import services


@task(ignore_result=True)
def refresh_kpi_snapshots() -> None:
    services.refresh_snapshots()
