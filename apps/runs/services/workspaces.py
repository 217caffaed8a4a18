"""Creating a workspace: the row and its first run (queued), which the catalog's launch hands over once it has
validated the template version and the parameters. Runs never read the catalog: what the engine needs from the
version (its module folder) is copied onto the workspace and each of its runs here."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.http import HttpRequest

from apps.accounts.models import Team
from apps.audit.services import record
from apps.runs.errors import WorkspaceNameTaken
from apps.runs.models import Run, RunKind, RunState, Workspace, WorkspaceStatus
from apps.runs.selectors import workspace_name_problem
from apps.runs.services.execution import dispatch_run


@transaction.atomic
def create_workspace(
    *,
    actor: User,
    team: Team,
    name: str,
    template_version: Any,
    parameters: dict[str, Any],
    module_path: str,
    hourly_cost: Decimal,
    currency: str,
    expires_at: datetime | None = None,
    reason: str = "",
    request: HttpRequest | None = None,
    approval_reason: str = "",
) -> tuple[Workspace, Run]:
    """The Workspace and its first Run (queued, sent to a worker after commit) together, or neither. The
    parameters are already validated; `template_version` is pinned, `module_path` is the folder it was created
    with. `approval_reason` (e.g. a budget guardrail's) makes the first run wait for a manager's approval after
    its plan, whatever the template's policy says."""
    taken = workspace_name_problem(team_slug=team.slug, name=name)
    if taken:
        raise WorkspaceNameTaken(taken)
    try:
        with transaction.atomic():
            workspace = Workspace.objects.create(
                team=team,
                name=name,
                template_version=template_version,
                module_path=module_path,
                parameters=parameters,
                status=WorkspaceStatus.PROVISIONING,
                created_by=actor,
                expires_at=expires_at,
                estimated_hourly_cost=hourly_cost,
                currency=currency,
            )
    except IntegrityError as exc:  # a concurrent launch took the name between the check and the insert
        raise WorkspaceNameTaken(f"Team '{team.slug}' already has a workspace named '{name}'.") from exc
    run = Run.objects.create(
        workspace=workspace,
        team=team,
        kind=RunKind.APPLY,
        state=RunState.QUEUED,
        state_reason="Waiting for a worker to pick it up.",
        template_version=template_version,
        module_path=module_path,
        parameters=parameters,
        reason=reason[:300],
        created_by=actor,
        estimated_hourly_cost=hourly_cost,
        approval_reason=approval_reason[:300],
    )
    dispatch_run(run=run)
    record(
        actor=actor,
        team=team,
        verb="workspace.launched",
        target=workspace,
        data={
            "template": template_version.template.slug,
            "version": template_version.version,
            "run": run.pk,
            "hourly": hourly_cost,
        },
        request=request,
    )
    return workspace, run
