"""Celery tasks of the costs app: each calls one service (imports, metering, reconciliation, budget and waste
checks); beat schedules them in portal/settings.py."""

from __future__ import annotations

from django.utils import timezone

from apps.core.tasks import task
from apps.costs.sources import cost_explorer, metering


@task(acks_late=True, ignore_result=True)
def meter_costs() -> None:
    """Hourly: catch up from the last metered hour (bounded by METERING_MAX_CATCHUP_HOURS)."""
    metering.meter_recent(now=timezone.now())


@task(acks_late=True, ignore_result=True)
def reconcile_cost_explorer() -> None:
    """Daily: re-read the recent days from Cost Explorer (only when COST_EXPLORER_ENABLED)."""
    cost_explorer.sync_recent(now=timezone.now())
