"""Celery tasks of the run engine: each takes a primary key and calls one service; safe to run twice."""

from __future__ import annotations

from apps.core.tasks import task
from apps.runs import services
from apps.runs.services.outages import DATABASE_DOWN

# A run's task that finds the database down before it claimed the run goes back to the broker and tries again
# (claiming makes a second try harmless) instead of dropping the message and waiting for the sweeper.
RETRY_WHILE_DATABASE_DOWN = {
    "autoretry_for": DATABASE_DOWN,
    "retry_backoff": 2,
    "retry_backoff_max": 30,
    "max_retries": 8,
}


@task(acks_late=True, ignore_result=True, **RETRY_WHILE_DATABASE_DOWN)
def execute_run(run_pk: int) -> None:
    services.execute_run(run_pk=run_pk)


@task(acks_late=True, ignore_result=True, **RETRY_WHILE_DATABASE_DOWN)
def apply_approved_run(run_pk: int) -> None:
    services.apply_approved_run(run_pk=run_pk)


@task(acks_late=True, ignore_result=True)
def expire_approvals() -> None:
    services.expire_approvals()


@task(acks_late=True, ignore_result=True)
def sweep_runs() -> None:
    services.sweep_runs()


@task(acks_late=True, ignore_result=True)
def destroy_expired_workspaces() -> None:
    services.destroy_expired_workspaces()


@task(acks_late=True, ignore_result=True)
def check_drift() -> None:
    services.check_drift()


@task(acks_late=True, ignore_result=True)
def warn_expiring_workspaces() -> None:
    services.warn_expiring_workspaces()
