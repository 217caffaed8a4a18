"""Launching a `deployment` template from the catalog: roll a registered version of one of the team's models out
to the team's endpoint named like the launch, creating that endpoint (local target, production) the first time.
The catalog checks what every launch shares (published version, team, parameters, budget) and calls this."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User
from django.db import transaction

from apps.accounts.models import Team
from apps.deployments.errors import InvalidDeployment
from apps.deployments.models import Deployment, Endpoint, Strategy
from apps.deployments.plan import DEFAULT_CANARY_STEPS
from apps.deployments.services.endpoints import create_endpoint
from apps.deployments.services.rollouts import start_deployment
from apps.registry.models import Model


def launch_rollout(*, actor: User, team: Team, name: str, parameters: dict[str, Any], reason: str = "") -> Deployment:
    model = Model.objects.filter(team=team, name=parameters.get("model")).first()
    if model is None:
        raise InvalidDeployment(f"Your team has no model named {parameters.get('model')!r}.", field="model")
    version = model.versions.filter(version=int(parameters.get("model_version") or 0)).first()
    if version is None:
        raise InvalidDeployment(
            f"{model.name} has no version {parameters.get('model_version')}.", field="model_version"
        )
    strategy = str(parameters.get("strategy") or Strategy.CANARY)
    steps = None
    if strategy == Strategy.CANARY and "bake_seconds" in parameters:
        bake = int(parameters["bake_seconds"])
        steps = [
            {**step, "bake_seconds": bake} if step.get("weight", 100) < 100 else step for step in DEFAULT_CANARY_STEPS
        ]
    with transaction.atomic():
        endpoint = Endpoint.objects.filter(team=team, name=name, torn_down_at=None).first()
        if endpoint is None:
            endpoint = create_endpoint(actor=actor, team=team, model=model, name=name)
        elif endpoint.model_id != model.pk:
            raise InvalidDeployment(f"Endpoint {name} serves {endpoint.model.name}, not {model.name}.", field="name")
        return start_deployment(
            actor=actor, endpoint=endpoint, version=version, strategy=strategy, steps=steps, reason=reason
        )
