"""Launch histories for the survey tests: a workspace per launch, with the runs that made it succeed or not."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from apps.accounts.models import Team
from apps.catalog.models import Template
from apps.runs.models import RunKind, RunState, Workspace
from tests.factories import RunFactory, TemplateVersionFactory, WorkspaceFactory

START = datetime.fromisoformat("2026-03-01T09:00:00+00:00")


def launch(
    user: Any, team: Team, *, template: Template | None = None, states: tuple[str, ...] = (RunState.APPLIED,),
    at: datetime | None = None,
) -> Workspace:  # fmt: skip
    """A workspace `user` launched, with one apply run per state (in order, a minute apart)."""
    version = TemplateVersionFactory(template=template) if template is not None else TemplateVersionFactory()
    workspace = WorkspaceFactory(team=team, created_by=user, template_version=version)
    when = at or timezone.now()
    for i, state in enumerate(states):
        RunFactory(workspace=workspace, kind=RunKind.APPLY, state=state, finished_at=when + timedelta(minutes=i))
    return workspace


def launches(user: Any, team: Team, count: int) -> list[Workspace]:
    return [launch(user, team, at=START + timedelta(hours=i)) for i in range(count)]
