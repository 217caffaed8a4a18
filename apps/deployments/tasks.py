"""Celery tasks of the deployments app: each takes a primary key (or nothing) and calls one service."""

from __future__ import annotations

from apps.core.tasks import task
from apps.deployments.services import experiments, rollouts, traffic
from apps.deployments.targets.local import supervise_all


@task(ignore_result=True)
def advance_deployment(deployment_id: int) -> None:
    rollouts.advance(deployment_id=deployment_id)


@task(ignore_result=True)
def resume_deployments() -> None:
    rollouts.resume_due()


@task(ignore_result=True)
def evaluate_experiment(experiment_id: int) -> None:
    experiments.evaluate(experiment_id=experiment_id)


@task(ignore_result=True)
def evaluate_experiments() -> None:
    for pk in experiments.due_experiments():
        experiments.evaluate(experiment_id=pk)


@task(ignore_result=True)
def supervise_model_servers() -> None:
    supervise_all()


@task(ignore_result=True)
def record_endpoint_traffic() -> None:
    traffic.record_traffic()
