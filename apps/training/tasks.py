"""Celery tasks of the training app: each calls one service (beat runs them; they are safe to run twice)."""

from __future__ import annotations

from apps.core.tasks import task
from apps.training.services import definitions, job_clusters, outputs, scheduling


@task(ignore_result=True)
def schedule_training_jobs() -> None:
    scheduling.schedule_jobs()


@task(ignore_result=True)
def expire_training_jobs() -> None:
    scheduling.expire_jobs()


@task(ignore_result=True)
def lose_silent_training_jobs() -> None:
    scheduling.lose_silent_jobs()


@task(ignore_result=True)
def fire_training_schedules() -> None:
    definitions.fire_due_schedules()


@task(ignore_result=True)
def register_definition_output(job_id: int) -> None:
    outputs.register_definition_output(job_id=job_id)


@task(acks_late=True, ignore_result=True)
def release_job_cluster(job_id: int) -> None:
    job_clusters.release_job_cluster(job_id=job_id)


@task(acks_late=True, ignore_result=True)
def release_leftover_job_clusters() -> None:
    job_clusters.release_leftover_clusters()
