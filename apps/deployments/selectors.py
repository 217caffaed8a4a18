"""Reads of endpoints, deployments and their timelines, always scoped to the caller's teams."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Prefetch, QuerySet, Sum

from apps.accounts.permissions import OVERSEE, AnyUser, restrict
from apps.deployments.models import (
    ACTIVE_DEPLOYMENT_STATES,
    Deployment,
    DeploymentEvent,
    DeploymentState,
    DoraRecord,
    Endpoint,
    EndpointTraffic,
    Experiment,
    Measurement,
    target_name,
)


def endpoints_for(user: AnyUser) -> QuerySet[Endpoint]:
    return restrict(
        Endpoint.objects.select_related("team", "model", "stable_version", "created_by"), user, "view"
    ).order_by("team__slug", "name")


def _deployments() -> QuerySet[Deployment]:
    return Deployment.objects.select_related(
        "team", "endpoint", "version", "version__model", "baseline_version", "requested_by", "approved_by"
    )


def deployments_for(user: AnyUser) -> QuerySet[Deployment]:
    return restrict(_deployments(), user, "view").order_by("-created_at")


def rollouts_awaiting_approval_for(user: AnyUser) -> QuerySet[Deployment]:
    """Rollouts waiting for a go the user may give: their managed teams', less the ones they requested (another
    manager approves those, services.rollouts.approve), oldest first."""
    waiting = restrict(_deployments(), user, OVERSEE).filter(state=DeploymentState.AWAITING_APPROVAL)
    return waiting.exclude(requested_by_id=user.pk).order_by("created_at", "pk")


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


@dataclass(frozen=True)
class EndpointCounts:
    """One endpoint's answers over a time range, with its availability objective (None: no SLO)."""

    team_id: int
    team_slug: str
    name: str
    objective: float | None
    requests: int
    errors: int
    slow: int

    @property
    def label(self) -> str:
        """How KPI breakdowns name it: endpoint names are unique only within a team."""
        return f"{self.team_slug}/{self.name}"

    @property
    def bad(self) -> int:
        return self.errors + self.slow

    @property
    def target_name(self) -> str:
        return target_name(self.team_slug, self.name)


def endpoint_traffic(
    *, start: datetime, end: datetime, team_ids: list[int] | None, slo_only: bool = False
) -> list[EndpointCounts]:
    """Per endpoint that answered requests, its hourly traffic rows whose hour starts in [start, end) summed;
    `slo_only`: endpoints that declare an SLO. One grouped query."""
    rows = EndpointTraffic.objects.filter(start__gte=start, start__lt=end)
    if slo_only:
        rows = rows.filter(endpoint__slo_availability_percent__isnull=False)
    if team_ids is not None:
        rows = rows.filter(team_id__in=team_ids)
    grouped = (
        rows.values("team_id", "endpoint__team__slug", "endpoint__name", "endpoint__slo_availability_percent")
        .annotate(requests=Sum("requests"), errors=Sum("errors"), slow=Sum("slow"))
        .filter(requests__gt=0)
        .order_by("endpoint__team__slug", "endpoint__name")
    )
    return [
        EndpointCounts(
            team_id=row["team_id"],
            team_slug=row["endpoint__team__slug"],
            name=row["endpoint__name"],
            objective=row["endpoint__slo_availability_percent"],
            requests=row["requests"],
            errors=row["errors"],
            slow=row["slow"],
        )
        for row in grouped
    ]
