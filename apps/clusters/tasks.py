"""Celery tasks for GPU clusters: each takes a primary key (or nothing) and calls one service; safe to run twice."""

from __future__ import annotations

from typing import Any

from apps.clusters import services
from apps.clusters.cloud import CloudThrottled
from apps.clusters.services import rollups
from apps.clusters.services.limits import terminate_clusters_over_max_hours
from apps.core.tasks import task

PROVISION_MAX_RETRIES = 5


@task(bind=True, acks_late=True, ignore_result=True, max_retries=PROVISION_MAX_RETRIES)
def provision_cluster(self: Any, cluster_pk: int) -> None:
    """EC2 throttling is retried with exponential backoff; on the last attempt the service fails the cluster."""
    try:
        services.provision_cluster(cluster_pk=cluster_pk, may_retry=self.request.retries < PROVISION_MAX_RETRIES)
    except CloudThrottled as exc:
        raise self.retry(exc=exc, countdown=min(600, 30 * 2**self.request.retries)) from exc


@task(acks_late=True, ignore_result=True)
def reconcile_clusters() -> None:
    services.reconcile_clusters()


@task(acks_late=True, ignore_result=True)
def stop_idle_clusters() -> None:
    services.warn_or_stop_idle_clusters()


@task(acks_late=True, ignore_result=True)
def enforce_cluster_max_hours() -> None:
    terminate_clusters_over_max_hours()


@task(acks_late=True, ignore_result=True)
def rollup_telemetry() -> None:
    rollups.rollup_telemetry()
