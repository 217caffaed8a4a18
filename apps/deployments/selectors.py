"""Reads of endpoints, deployments and their timelines, always scoped to the caller's teams."""

from __future__ import annotations

from django.db.models import Prefetch, QuerySet

from apps.accounts.permissions import AnyUser, restrict
from apps.deployments.models import (
    ACTIVE_DEPLOYMENT_STATES,
    Deployment,
    DeploymentEvent,
    DeploymentState,
    DoraRecord,
    Endpoint,
    Experiment,
    Measurement,
)


def endpoints_for(user: AnyUser) -> QuerySet[Endpoint]:
    return restrict(
        Endpoint.objects.select_related("team", "model", "stable_version", "created_by"), user, "view"
    ).order_by("team__slug", "name")


def deployments_for(user: AnyUser) -> QuerySet[Deployment]:
    return restrict(
        Deployment.objects.select_related(
            "team", "endpoint", "version", "version__model", "baseline_version", "requested_by", "approved_by"
        ),
        user,
        "view",
    ).order_by("-created_at")


def deployment_detail(user: AnyUser) -> QuerySet[Deployment]:
    """Deployments with their timeline and measurements, for the page and the API's detail."""
    return deployments_for(user).prefetch_related(
        Prefetch("events", queryset=DeploymentEvent.objects.select_related("actor").order_by("at", "pk")),
        Prefetch("measurements", queryset=Measurement.objects.order_by("measured_at", "pk")),
    )


def active_deployment(endpoint: Endpoint) -> Deployment | None:
    return endpoint.deployments.filter(state__in=sorted(ACTIVE_DEPLOYMENT_STATES)).first()


def rollback_candidate(endpoint: Endpoint) -> Deployment | None:
    """The rollout an endpoint rollback would undo: the last one that succeeded, if it put today's version in
    and had one to replace."""
    last = (
        endpoint.deployments.filter(state=DeploymentState.SUCCEEDED)
        .select_related("baseline_version")
        .order_by("-finished_at")
        .first()
    )
    if last is None or last.version_id != endpoint.stable_version_id or last.baseline_version_id is None:
        return None
    return last


def dora_records_for(user: AnyUser) -> QuerySet[DoraRecord]:
    return restrict(DoraRecord.objects.select_related("deployment", "team"), user, "view")


def experiments_for(user: AnyUser) -> QuerySet[Experiment]:
    return restrict(
        Experiment.objects.select_related("team", "endpoint", "version_a", "version_b", "started_by"), user, "view"
    ).order_by("-created_at")
