"""Endpoints: create one for a registered model, and tear it down (every variant on the target, then the row
says so). An endpoint with a rollout in flight cannot be torn down: abort the rollout first."""

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
            )
    except IntegrityError as exc:
        raise InvalidDeployment(f"Your team already has an endpoint named {name}.", field="name") from exc
    record(
        actor=actor,
        team=team,
        verb="endpoint.created",
        target=endpoint,
        data={"model": model.name, "target": target, "environment": environment},
    )
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
