"""`{% due_survey_prompt as prompt %}`: the survey card's data for the page's user (one query when none is due),
so a page shows the card with one include and its view knows nothing about the survey."""

from __future__ import annotations

from typing import Any

from django import template
from django.contrib.auth.models import User

from apps.feedback.models import SurveyPrompt
from apps.feedback.services import offer_survey

register = template.Library()


@register.simple_tag(takes_context=True)
def due_survey_prompt(context: dict[str, Any]) -> SurveyPrompt | None:
    request = context.get("request")
    user = getattr(request, "user", None)
    if not isinstance(user, User) or not user.is_authenticated:
        return None
    return offer_survey(user=user)
