"""Errors of the satisfaction survey, each with a stable `code` (clients switch on it)."""

from __future__ import annotations

from apps.core.errors import Conflict, ValidationFailed


class InvalidSurveyScore(ValidationFailed):
    code = "invalid_survey_score"


class InvalidSurveyComment(ValidationFailed):
    code = "invalid_survey_comment"


class SurveyPromptClosed(Conflict):
    code = "survey_prompt_closed"
