"""The satisfaction survey: after a user's 1st, 10th, 20th... successful launch the portal asks one optional
question about it (SurveyPrompt, one row per prompt shown), and an answer is a SurveyResponse (score 1-5 and an
optional comment). The prompt, the response and the KPIs (CSAT, response rate) carry the launch's team and
template, so CSAT can be read per team and per template."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

from apps.core.models import BaseModel

MIN_SCORE, MAX_SCORE = 1, 5
COMMENT_MAX = 1000


class SurveyPrompt(BaseModel):
    """The question about one launch, created when it is first shown (`shown_at`); closed by an answer or a
    dismissal. `launch_number` is which successful launch of the user it is about (1, 10, 20...)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="survey_prompts")
    team = models.ForeignKey("accounts.Team", on_delete=models.PROTECT, related_name="survey_prompts")
    template = models.ForeignKey("catalog.Template", on_delete=models.PROTECT, related_name="survey_prompts")
    workspace = models.ForeignKey("runs.Workspace", on_delete=models.PROTECT, related_name="survey_prompts")
    launch_number = models.PositiveIntegerField()
    shown_at = models.DateTimeField()
    answered_at = models.DateTimeField(null=True, blank=True)
    dismissed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-shown_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["user", "launch_number"], name="feedback_prompt_unique_launch"),
        ]
        indexes = [models.Index(fields=["team", "shown_at"])]

    def __str__(self) -> str:
        return f"survey of {self.user_id} after launch {self.launch_number}"

    @property
    def is_open(self) -> bool:
        return self.answered_at is None and self.dismissed_at is None


class SurveyResponse(BaseModel):
    """One answer: the score and the comment (free text, kept here and never copied into the audit log)."""

    prompt = models.OneToOneField(SurveyPrompt, on_delete=models.CASCADE, related_name="response")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    team = models.ForeignKey("accounts.Team", on_delete=models.PROTECT, related_name="survey_responses")
    template = models.ForeignKey("catalog.Template", on_delete=models.PROTECT, related_name="survey_responses")
    workspace = models.ForeignKey("runs.Workspace", on_delete=models.PROTECT, related_name="+")
    score = models.PositiveSmallIntegerField(validators=[MinValueValidator(MIN_SCORE), MaxValueValidator(MAX_SCORE)])
    comment = models.TextField(blank=True, max_length=COMMENT_MAX)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["team", "created_at"])]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(score__gte=MIN_SCORE, score__lte=MAX_SCORE), name="feedback_score_1_to_5"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.score}/5 for {self.template_id} by {self.user_id}"
