"""Changing a workspace's variables: the edited parameters are checked exactly as a launch checks them (the
version's JSON Schema through `validate_parameters`, the price model, the team's budgets), then a plan-and-apply
run carries them (`runs.services.queue_parameter_change`); the template's and the team's approval policy hold it
like any run. The catalog does this, not runs, because runs never read the catalog."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from apps.catalog.schema import validate_parameters
from apps.catalog.services.launch import Launch, _apply_guardrail, budget_check_for, price_launch
from apps.costs.estimates import Estimate
from apps.runs.models import Run, Workspace
from apps.runs.services import queue_parameter_change
from apps.runs.services.lifecycle import require_member


@dataclass(frozen=True)
class VariablesChange:
    run: Run
    estimate: Estimate
    warnings: list[str] = field(default_factory=list)


def _hours_left(workspace: Workspace, now: datetime) -> int | None:
    """The budget check's horizon: the hours until the workspace expires (None: nothing bounds it)."""
    if workspace.expires_at is None:
        return None
    return max(1, -(-int((workspace.expires_at - now).total_seconds()) // 3600))


@transaction.atomic
def change_workspace_variables(
    *,
    actor: User,
    workspace: Workspace,
    params: Any,
    reason: str = "",
    request: HttpRequest | None = None,
    override_budget: bool = False,
) -> VariablesChange:
    """Validate `params` against the workspace's pinned version like a launch, price them, check the budgets,
    and queue the run that applies them; all of it, or nothing."""
    require_member(actor=actor, workspace=workspace)  # authorize before parsing
    version = workspace.template_version
    parameters = validate_parameters(version.parameters_schema, params)
    estimate = price_launch(version=version, parameters=parameters)
    check = budget_check_for(
        actor=actor,
        team=workspace.team,
        version=version,
        estimate=estimate,
        hours=_hours_left(workspace, timezone.now()),
    )
    launch = Launch(
        actor=actor,
        team=workspace.team,
        version=version,
        parameters=parameters,
        name=workspace.name,
        estimate=estimate,
        reason=reason,
        ttl_hours=None,
        request=request,
    )
    approval, warnings = _apply_guardrail(launch, check, override_budget)
    run = queue_parameter_change(
        actor=actor,
        workspace=workspace,
        parameters=parameters,
        hourly_cost=estimate.hourly,
        approval_reason=approval,
        reason=reason,
        request=request,
    )
    return VariablesChange(run=run, estimate=estimate, warnings=warnings)
