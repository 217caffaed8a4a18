"""The one way a deployment changes state (through `apps.core.transitions`). A deployment that ends gets its DORA
record in the same transaction, and once that commits, the people to tell about a failure or a rollback are told."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.auth.models import User

from apps.core.errors import Conflict
from apps.core.transitions import Change, Machine, SideEffect, transition
from apps.deployments.models import (
    ALLOWED_DEPLOYMENT_TRANSITIONS,
    TERMINAL_DEPLOYMENT_STATES,
    Deployment,
    DeploymentState,
)
from apps.deployments.services.dora import record_dora
from apps.deployments.services.notify import notify_deployment


class IllegalDeploymentTransition(Conflict):
    code = "illegal_deployment_transition"


def _dora(change: Change[Deployment]) -> Iterable[str]:
    record_dora(deployment=change.obj, ended=change.to, now=change.now)
    return ()


DEPLOYMENT_MACHINE: Machine[Deployment] = Machine(
    model=Deployment,
    field="state",
    edges=ALLOWED_DEPLOYMENT_TRANSITIONS,
    illegal=lambda deployment, previous, to: IllegalDeploymentTransition(
        f"Deployment #{deployment.pk} is {previous.replace('_', ' ')}; it cannot become {to.replace('_', ' ')}."
    ),
    reason_field="state_reason",
    stamps={
        DeploymentState.PROVISIONING: "started_at",
        **{state: "finished_at" for state in TERMINAL_DEPLOYMENT_STATES},
    },
    related=("endpoint", "team", "version"),
    audit_verb=lambda to: f"deployment.{to}",
    effects=(
        SideEffect(enters=TERMINAL_DEPLOYMENT_STATES, apply=_dora),
        SideEffect(
            enters={DeploymentState.ROLLING_BACK, DeploymentState.FAILED},
            on_commit=lambda change: notify_deployment(deployment=change.obj, state=change.to, reason=change.reason),
        ),
    ),
)


def deployment_transition(
    *, deployment: Deployment, to: str, actor: User | None = None, reason: str = "", **fields: Any
) -> Deployment:
    """Move `deployment` to `to` along ALLOWED_DEPLOYMENT_TRANSITIONS; `fields` are saved with it."""
    return transition(DEPLOYMENT_MACHINE, obj=deployment, to=to, actor=actor, reason=reason, fields=fields)
