"""Endpoints: create one for a registered model (with its SLO: the defaults unless told otherwise), change its SLO,
and tear it down (every variant on the target, then the row says so). An endpoint with a rollout in flight cannot
be torn down: abort the rollout first."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.accounts.models import Team
from apps.accounts.permissions import require
from apps.audit.services import record
from apps.core.names import name_problem
from apps.deployments.errors import EndpointBusy, InvalidDeployment
from apps.deployments.models import ACTIVE_DEPLOYMENT_STATES, Endpoint, Environment, TargetKind
from apps.deployments.services.backends import target_for
from apps.deployments.slo import DEFAULT_AVAILABILITY_PERCENT, DEFAULT_LATENCY_MS, Slo, parse_slo
from apps.registry.models import Model

SAGEMAKER_CONFIG_KEYS = frozenset({"image_uri", "instance_type", "instance_count", "execution_role_arn"})


def _config(target: str, config: Mapping[str, Any] | None) -> dict[str, Any]:
    config = dict(config or {})
    allowed = SAGEMAKER_CONFIG_KEYS if target == TargetKind.SAGEMAKER else frozenset()
    unknown = set(config) - allowed
    if unknown:
        raise InvalidDeployment(
            f"Unknown settings for a {target} endpoint: {', '.join(sorted(unknown))}.", field="config"
        )
    count = config.get("instance_count", 1)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= 20:
        raise InvalidDeployment("instance_count is 1 to 20.", field="config")
    return config


def create_endpoint(
    *,
    actor: User,
    team: Team,
    model: Model,
    name: str,
    target: str = TargetKind.LOCAL,
    environment: str = Environment.PRODUCTION,
    region: str = "",
    config: Mapping[str, Any] | None = None,
    require_approval: bool = False,
    slo_availability_percent: float | None = DEFAULT_AVAILABILITY_PERCENT,
    slo_latency_ms: int | None = DEFAULT_LATENCY_MS,
) -> Endpoint:
    require(actor, "deployment.operate", team, message="Only members of the team create its endpoints.")
    if model.team_id != team.pk:
        raise InvalidDeployment("The model belongs to another team.", field="model")
    problem = name_problem(name, what="An endpoint name")
    if problem:
        raise InvalidDeployment(problem, field="name")
    if target not in TargetKind.values:
        raise InvalidDeployment(f"Target is one of {', '.join(TargetKind.values)}.", field="target")
    if environment not in Environment.values:
        raise InvalidDeployment(f"Environment is one of {', '.join(Environment.values)}.", field="environment")
    slo = parse_slo(availability_percent=slo_availability_percent, latency_ms=slo_latency_ms)
    try:
        with transaction.atomic():
            endpoint = Endpoint.objects.create(
                team=team,
                model=model,
                name=name,
                target=target,
                environment=environment,
                region=region,
                config=_config(target, config),
                require_approval=require_approval,
                created_by=actor,
                **_slo_fields(slo),
            )
    except IntegrityError as exc:
        raise InvalidDeployment(f"Your team already has an endpoint named {name}.", field="name") from exc
    record(
        actor=actor,
        team=team,
        verb="endpoint.created",
        target=endpoint,
        data={"model": model.name, "target": target, "environment": environment, "slo": _slo_fields(slo)},
    )
    return endpoint


def _slo_fields(slo: Slo | None) -> dict[str, Any]:
    return {
        "slo_availability_percent": slo.availability_percent if slo else None,
        "slo_latency_ms": slo.latency_ms if slo else None,
    }


def set_endpoint_slo(
    *, actor: User, endpoint: Endpoint, availability_percent: float | None, latency_ms: int | None
) -> Endpoint:
    """Declare, change or (both None) drop the endpoint's SLO. Traffic already recorded keeps the slow count the
    objective of its time gave it."""
    require(actor, "deployment.operate", endpoint, message="Only members of the team change its endpoints' SLO.")
    fields = _slo_fields(parse_slo(availability_percent=availability_percent, latency_ms=latency_ms))
    before = {"slo_availability_percent": endpoint.slo_availability_percent, "slo_latency_ms": endpoint.slo_latency_ms}
    Endpoint.objects.filter(pk=endpoint.pk).update(**fields, updated_at=timezone.now())
    endpoint.refresh_from_db()
    record(actor=actor, team=endpoint.team, verb="endpoint.slo_changed", target=endpoint,
           data={"before": before, "after": fields})  # fmt: skip
    return endpoint


def teardown_endpoint(*, actor: User, endpoint: Endpoint) -> Endpoint:
    require(actor, "deployment.operate", endpoint, message="Only members of the team tear down its endpoints.")
    if endpoint.deployments.filter(state__in=sorted(ACTIVE_DEPLOYMENT_STATES)).exists():
        raise EndpointBusy(f"{endpoint.name} has a rollout in flight; abort it first.")
    target_for(endpoint).teardown()
    now = timezone.now()
    Endpoint.objects.filter(pk=endpoint.pk).update(traffic={}, torn_down_at=now, stable_version=None, updated_at=now)
    endpoint.refresh_from_db()
    record(actor=actor, team=endpoint.team, verb="endpoint.torn_down", target=endpoint, data={})
    return endpoint
