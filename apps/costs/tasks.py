"""Celery tasks of the costs app: each calls one service (imports, metering, reconciliation, budget and waste
checks); beat schedules them in portal/settings.py."""
