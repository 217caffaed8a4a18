"""Celery tasks of the deployments app: each takes a primary key (or nothing) and calls one service."""

from __future__ import annotations

from apps.core.tasks import task
from apps.deployments.services import rollouts


@task(ignore_result=True)
def advance_deployment(deployment_id: int) -> None:
    rollouts.advance(deployment_id=deployment_id)


@task(ignore_result=True)
def resume_deployments() -> None:
    rollouts.resume_due()
