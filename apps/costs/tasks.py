"""Celery tasks of the costs app: each calls one service (imports, metering, reconciliation, budget and waste
checks); beat schedules them in portal/settings.py."""

from __future__ import annotations

from django.utils import timezone

from apps.core.tasks import task
from apps.costs.services import anomalies, budgets

# --- Budgets ---------------------------------------------------------------------------------------------------


@task()
def evaluate_budgets() -> int:
    """Hourly: thresholds crossed by actual and forecast spend (the number of new alerts)."""
    return len(budgets.evaluate_budgets(now=timezone.now()))


@task()
def detect_anomalies() -> int:
    """Daily: yesterday's spend per team against the same weekday's history (the number of new alerts)."""
    return len(anomalies.detect_anomalies(now=timezone.now()))
