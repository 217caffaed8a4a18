"""Writes of the survey: offer the due prompt (recorded when first shown, so the response rate counts what users
actually saw), answer it, dismiss it. Answers and dismissals are audited with the score and the template, never
the comment (free text has no place in the audit log)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.contrib.auth.models import User
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone

from apps.audit.services import record
from apps.core.errors import NotFound
from apps.feedback import selectors
from apps.feedback.errors import InvalidSurveyComment, InvalidSurveyScore, SurveyPromptClosed
from apps.feedback.models import COMMENT_MAX, MAX_SCORE, MIN_SCORE, SurveyPrompt, SurveyResponse


def offer_survey(*, user: User, now: datetime | None = None) -> SurveyPrompt | None:
    """The user's due prompt, or None (one query when none is due). The first time a prompt is offered its row
    is created with `shown_at`; offering it again returns the same row."""
    state = selectors.survey_state(user)
    if not state.due:
        return None
    if state.prompt_id is not None:
        return selectors.prompts_for(user).filter(pk=state.prompt_id).first()
    n = state.launches
    launch = next(iter(selectors.successful_workspaces(user).select_related("template_version")[n - 1 : n]), None)
    if launch is None:  # a launch counted a moment ago is gone from the ordering: ask next time
        return None
    prompt, _ = SurveyPrompt.objects.get_or_create(
        user=user,
        launch_number=n,
        defaults={
            "team_id": launch.team_id,
            "template_id": launch.template_version.template_id,
            "workspace": launch,
            "shown_at": now or timezone.now(),
        },
    )
    return prompt if prompt.is_open else None


def _own_open_prompt(actor: User, prompt: SurveyPrompt) -> SurveyPrompt:
    """The prompt, locked, if it is the actor's own and still open; another user's prompt does not exist for
    the actor (NotFound), whatever team it belongs to."""
    locked = SurveyPrompt.objects.select_for_update().select_related("team", "template").filter(pk=prompt.pk).first()
    if locked is None or locked.user_id != actor.pk:
        raise NotFound("No such survey prompt.")
    if not locked.is_open:
        raise SurveyPromptClosed("This survey was already answered or dismissed.")
    return locked


def _checked_score(score: Any) -> int:
    if isinstance(score, bool) or not isinstance(score, int) or not MIN_SCORE <= score <= MAX_SCORE:
        raise InvalidSurveyScore(f"Pick a score from {MIN_SCORE} to {MAX_SCORE}.", field="score")
    return int(score)


def answer_survey(
    *,
    actor: User,
    prompt: SurveyPrompt,
    score: Any,
    comment: str = "",
    now: datetime | None = None,
    request: HttpRequest | None = None,
) -> SurveyResponse:
    """Store the answer and close the prompt; a bad score or comment stores nothing."""
    checked = _checked_score(score)
    text = (comment or "").strip()
    if len(text) > COMMENT_MAX:
        raise InvalidSurveyComment(f"A comment is at most {COMMENT_MAX} characters.", field="comment")
    when = now or timezone.now()
    with transaction.atomic():
        locked = _own_open_prompt(actor, prompt)
        response = SurveyResponse.objects.create(
            prompt=locked, user=actor, team_id=locked.team_id, template_id=locked.template_id,
            workspace_id=locked.workspace_id, score=checked, comment=text,
        )  # fmt: skip
        locked.answered_at = when
        locked.save(update_fields=["answered_at", "updated_at"])
        record(
            actor=actor, team=locked.team, verb="feedback.answered", target=locked, request=request,
            data={"score": checked, "template": locked.template.slug, "launch_number": locked.launch_number,
                  "commented": bool(text)},
        )  # fmt: skip
    prompt.answered_at = when
    return response


def dismiss_survey(
    *, actor: User, prompt: SurveyPrompt, now: datetime | None = None, request: HttpRequest | None = None
) -> SurveyPrompt:
    """Close the prompt without an answer (it still counts as shown for the response rate)."""
    when = now or timezone.now()
    with transaction.atomic():
        locked = _own_open_prompt(actor, prompt)
        locked.dismissed_at = when
        locked.save(update_fields=["dismissed_at", "updated_at"])
        record(
            actor=actor, team=locked.team, verb="feedback.dismissed", target=locked, request=request,
            data={"template": locked.template.slug, "launch_number": locked.launch_number},
        )  # fmt: skip
    return locked
