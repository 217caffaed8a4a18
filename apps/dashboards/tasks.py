"""Celery tasks of the dashboards: each calls one service."""

from __future__ import annotations

from apps.core.tasks import task
from apps.dashboards import services
from apps.dashboards.selectors import WINDOWS


@task(ignore_result=True)
def refresh_kpi_snapshots(windows: list[int] | None = None) -> None:
    services.refresh_snapshots(windows=tuple(windows) if windows else WINDOWS)
