"""Survey API: the caller's due prompt (or 204), their prompts, and answering or dismissing one. A prompt is its
user's own: anyone else's, a teammate's included, is a 404."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.selectors import authenticated
from apps.core.bodies import validated_body
from apps.feedback import selectors, services
from apps.feedback.models import COMMENT_MAX, MAX_SCORE, MIN_SCORE, SurveyPrompt


class SurveyPromptSerializer(serializers.ModelSerializer[SurveyPrompt]):
    team: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    template: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    workspace: serializers.PrimaryKeyRelatedField[Any] = serializers.PrimaryKeyRelatedField(read_only=True)
    answered_at = serializers.DateTimeField(read_only=True, allow_null=True)
    dismissed_at = serializers.DateTimeField(read_only=True, allow_null=True)
    question = serializers.SerializerMethodField()

    class Meta:
        model = SurveyPrompt
        fields = ["id", "launch_number", "team", "template", "workspace", "question", "shown_at", "answered_at",
                  "dismissed_at"]  # fmt: skip
        read_only_fields = fields

    def get_question(self, prompt: SurveyPrompt) -> str:
        return f"How was launching {prompt.template.name}? ({MIN_SCORE} poor - {MAX_SCORE} great)"


@extend_schema_field({"type": "integer", "minimum": MIN_SCORE, "maximum": MAX_SCORE})
class ScoreField(serializers.IntegerField):
    """An integer; the 1-5 bound is the service's (`invalid_survey_score`), so every client hears the same code."""


class AnswerSerializer(serializers.Serializer[Any]):
    score = ScoreField(help_text=f"{MIN_SCORE} (poor) to {MAX_SCORE} (great).")
    comment = serializers.CharField(required=False, allow_blank=True, default="", trim_whitespace=False,
                                    help_text=f"Optional, at most {COMMENT_MAX} characters.")  # fmt: skip


class DuePromptView(APIView):
    """The survey the portal would show you now; recorded as shown the first time it is offered."""

    @extend_schema(
        responses={200: SurveyPromptSerializer, 204: OpenApiResponse(description="No survey is due.")},
        summary="The caller's due survey prompt, if any",
    )
    def get(self, request: Request) -> Response:
        prompt = services.offer_survey(user=authenticated(request.user))
        if prompt is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        return Response(SurveyPromptSerializer(prompt).data)


class SurveyPromptViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[SurveyPrompt]):
    """Your survey prompts (answered, dismissed or open); answer or dismiss an open one."""

    serializer_class = SurveyPromptSerializer
    lookup_value_regex = r"\d+"
    ordering_fields = ["shown_at", "launch_number"]

    def get_queryset(self) -> QuerySet[SurveyPrompt]:
        return selectors.prompts_for(self.request.user).order_by("-shown_at", "-pk")

    @extend_schema(request=AnswerSerializer, responses={200: SurveyPromptSerializer},
                   summary="Answer a survey prompt (score 1-5, optional comment)")  # fmt: skip
    @action(detail=True, methods=["post"])
    def answer(self, request: Request, pk: str) -> Response:
        prompt = self.get_object()
        data = validated_body(request, AnswerSerializer)
        services.answer_survey(actor=authenticated(request.user), prompt=prompt, score=data["score"],
                               comment=data["comment"], request=request._request)  # fmt: skip
        return Response(SurveyPromptSerializer(self.get_queryset().get(pk=prompt.pk)).data)

    @extend_schema(request=None, responses={200: SurveyPromptSerializer}, summary="Dismiss a survey prompt")
    @action(detail=True, methods=["post"])
    def dismiss(self, request: Request, pk: str) -> Response:
        prompt = self.get_object()
        services.dismiss_survey(actor=authenticated(request.user), prompt=prompt, request=request._request)
        return Response(SurveyPromptSerializer(self.get_queryset().get(pk=prompt.pk)).data)
