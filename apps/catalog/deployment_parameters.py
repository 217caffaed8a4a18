"""The parameters of a `deployment` template, checked against what `deployments.services.launch` takes.

A deployment template has no Terraform module: its launch rolls a registered model version out to the team's
endpoint named like the launch (creating the endpoint on the local target the first time). So its schema may only
declare the rollout's settings, each of its type, every strategy one the engine knows."""

from __future__ import annotations

from typing import Any

from apps.catalog.cluster_parameters import check_declared_settings
from apps.deployments.models import Strategy
from apps.deployments.plan import MAX_BAKE_SECONDS

# deployments.services.launch.launch_rollout's settings from the parameters: name -> (JSON type, required).
DEPLOYMENT_SETTINGS: dict[str, tuple[str, bool]] = {
    "model": ("string", True),
    "model_version": ("integer", True),
    "strategy": ("string", False),
    "bake_seconds": ("integer", False),
}


def check_deployment_schema(schema: Any) -> list[str]:
    """Problems with a `deployment` template's parameters schema, as sentences a curator can act on."""
    problems, typed = check_declared_settings(schema, DEPLOYMENT_SETTINGS, what="model deployment", kind="deployment")
    strategy = typed.get("strategy")
    if strategy is not None:
        offered = strategy.get("enum") if isinstance(strategy.get("enum"), list) else None
        if offered is None or any(value not in Strategy.values for value in offered):
            problems.append(f"Schema property 'strategy' needs an enum of {', '.join(Strategy.values)}.")
    bake = typed.get("bake_seconds")
    if bake is not None and not (
        bake.get("minimum", -1) >= 0 and bake.get("maximum", MAX_BAKE_SECONDS + 1) <= MAX_BAKE_SECONDS
    ):
        problems.append(
            f"Schema property 'bake_seconds' needs a minimum of 0 and a maximum of at most {MAX_BAKE_SECONDS}."
        )
    version = typed.get("model_version")
    if version is not None and not isinstance(version.get("minimum"), int):
        problems.append("Schema property 'model_version' needs a minimum of 1.")
    return problems
