"""Celery tasks of the costs app: each calls one service (imports, metering, reconciliation, budget and waste
checks); beat schedules them in portal/settings.py."""

from __future__ import annotations

import logging
from datetime import date

from django.conf import settings
from django.utils import timezone

from apps.core.tasks import task
from apps.costs.services import anomalies, budgets, rollups
from apps.costs.sources import cost_explorer, metering
from apps.costs.sources.cur import import_cur


@task(acks_late=True, ignore_result=True)
def meter_costs() -> None:
    """Every METERING_SECONDS: catch up from the last metered hour (bounded by METERING_MAX_CATCHUP_HOURS)."""
    metering.meter_recent(now=timezone.now())


@task(acks_late=True, ignore_result=True)
def reconcile_cost_explorer() -> None:
    """Daily: re-read the recent days from Cost Explorer (only when COST_EXPLORER_ENABLED)."""
    cost_explorer.sync_recent(now=timezone.now())


@task(acks_late=True, ignore_result=True)
def rebuild_cost_days(source: str, days: list[str]) -> None:
    """A large shared-cost rule change: rebuild `source`'s rollups for those ISO days (idempotent)."""
    rollups.rebuild_days(source=source, days=[date.fromisoformat(day) for day in days])


# --- Budgets ---------------------------------------------------------------------------------------------------


@task()
def evaluate_budgets() -> int:
    """Hourly: thresholds crossed by actual and forecast spend (the number of new alerts)."""
    return len(budgets.evaluate_budgets(now=timezone.now()))


@task()
def detect_anomalies() -> int:
    """Daily: yesterday's spend per team against the same weekday's history (the number of new alerts)."""
    return len(anomalies.detect_anomalies(now=timezone.now()))


logger = logging.getLogger(__name__)


# --- CUR import ---------------------------------------------------------------------------------------------
@task(acks_late=True)
def import_cur_exports(location: str = "") -> list[int]:
    """Beat: import new CUR deliveries from `location` (default COST_CUR_LOCATION); returns the import pks."""
    location = location or settings.COST_CUR_LOCATION
    if not location:
        logger.info("COST_CUR_LOCATION is empty: no AWS bill to import")
        return []
    return [run.pk for run in import_cur(location=location)]
