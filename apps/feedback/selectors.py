"""Reads of the survey: what counts as a successful launch, which prompt is due, a user's own prompts.

A successful launch is a workspace the user launched whose apply succeeded at least once (a launch whose first
apply failed and whose retry applied counts once, when it first applied). GPU clusters, deployments and training
jobs have lifecycles of their own and are not counted (yet)."""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.models import User
from django.db.models import Exists, Min, OuterRef, Q, QuerySet

from apps.accounts.permissions import AnyUser
from apps.feedback.models import SurveyPrompt
from apps.runs.models import Run, RunKind, RunState, Workspace

FIRST_PROMPT, EVERY = 1, 10


def is_prompt_due_at(launches: int) -> bool:
    """The survey asks after the 1st successful launch and after every 10th (10, 20, 30...)."""
    return launches == FIRST_PROMPT or (launches >= EVERY and launches % EVERY == 0)


def _applied_runs() -> QuerySet[Run]:
    return Run.objects.filter(workspace=OuterRef("pk"), kind=RunKind.APPLY, state=RunState.APPLIED)


def successful_workspaces(user: AnyUser) -> QuerySet[Workspace]:
    """The user's launches that applied, oldest success first (`succeeded_at`: the first applied apply)."""
    return (
        Workspace.objects.filter(created_by_id=user.pk)
        .filter(Exists(_applied_runs()))
        .annotate(
            succeeded_at=Min("runs__finished_at", filter=Q(runs__kind=RunKind.APPLY, runs__state=RunState.APPLIED))
        )
        .order_by("succeeded_at", "pk")
    )


def successful_launches(user: AnyUser) -> int:
    return Workspace.objects.filter(created_by_id=user.pk).filter(Exists(_applied_runs())).count()


@dataclass(frozen=True)
class SurveyState:
    """How many launches succeeded, and the prompt about the latest one if there is one (open or closed)."""

    launches: int
    prompt_id: int | None
    prompt_open: bool

    @property
    def due(self) -> bool:
        return is_prompt_due_at(self.launches) and (self.prompt_id is None or self.prompt_open)


def survey_state(user: User) -> SurveyState:
    """The user's successful launch count (one COUNT, the only query when no prompt is due: every page asks) and,
    when one is due, the prompt for that count. Two plain queries rather than one that repeats the COUNT in each
    of its subqueries (PostgreSQL ran it three times: 46 ms a page for a user with a year of launches)."""
    launches = successful_launches(user)
    if not is_prompt_due_at(launches):
        return SurveyState(launches=launches, prompt_id=None, prompt_open=False)
    prompt = (
        SurveyPrompt.objects.filter(user_id=user.pk, launch_number=launches)
        .annotate(open=Q(answered_at=None, dismissed_at=None))
        .values("pk", "open")
        .first()
    )
    if prompt is None:
        return SurveyState(launches=launches, prompt_id=None, prompt_open=False)
    return SurveyState(launches=launches, prompt_id=prompt["pk"], prompt_open=prompt["open"])


def prompts_for(user: AnyUser) -> QuerySet[SurveyPrompt]:
    """A user's own prompts: nobody else's, whichever team (a teammate's prompt is not yours to answer)."""
    if not isinstance(user, User) or not user.is_authenticated:
        return SurveyPrompt.objects.none()
    return SurveyPrompt.objects.filter(user_id=user.pk).select_related("team", "template", "workspace")
