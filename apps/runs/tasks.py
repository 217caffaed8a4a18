"""Celery tasks of the run engine: each takes a primary key and calls one service; safe to run twice."""

from __future__ import annotations

from celery import shared_task

from apps.runs import services


@shared_task(acks_late=True, ignore_result=True)
def execute_run(run_pk: int) -> None:
    services.execute_run(run_pk)


@shared_task(acks_late=True, ignore_result=True)
def apply_approved_run(run_pk: int) -> None:
    services.apply_approved_run(run_pk)


@shared_task(acks_late=True, ignore_result=True)
def expire_approvals() -> None:
    services.expire_approvals()


@shared_task(acks_late=True, ignore_result=True)
def sweep_runs() -> None:
    services.sweep_runs()


@shared_task(acks_late=True, ignore_result=True)
def destroy_expired_workspaces() -> None:
    services.destroy_expired_workspaces()


@shared_task(acks_late=True, ignore_result=True)
def check_drift() -> None:
    services.check_drift()


@shared_task(acks_late=True, ignore_result=True)
def warn_expiring_workspaces() -> None:
    services.warn_expiring_workspaces()
