"""Accounts API: who am I, my teams, my tokens. Thin: parse, call one service or selector, render."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts import selectors, services
from apps.accounts.models import ApiToken, Membership, Team
from apps.accounts.selectors import authenticated
from apps.core.openapi import problem_responses


class MembershipSerializer(serializers.ModelSerializer[Membership]):
    team: serializers.SlugRelatedField[Team] = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    username = serializers.CharField(source="user.username", read_only=True)

    class Meta:
        model = Membership
        fields = ["team", "username", "role"]


class TeamSerializer(serializers.ModelSerializer[Team]):
    members = MembershipSerializer(source="memberships", many=True, read_only=True)

    class Meta:
        model = Team
        fields = ["id", "slug", "name", "description", "members", "created_at"]


class MeSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    username = serializers.CharField()
    email = serializers.EmailField()
    first_name = serializers.CharField()
    is_superuser = serializers.BooleanField()
    memberships = MembershipSerializer(many=True)


class MeView(APIView):
    @extend_schema(responses=MeSerializer, summary="The authenticated user and their team roles")
    def get(self, request: Request) -> Response:
        user = request.user
        data = {
            "id": user.pk,
            "username": user.get_username(),
            "email": getattr(user, "email", ""),
            "first_name": getattr(user, "first_name", ""),
            "is_superuser": getattr(user, "is_superuser", False),
            "memberships": selectors.memberships_for(user),
        }
        return Response(MeSerializer(data).data)


class TeamViewSet(viewsets.ReadOnlyModelViewSet[Team]):
    """Teams you belong to, with their members."""

    serializer_class = TeamSerializer
    lookup_field = "slug"
    search_fields = ["slug", "name"]
    ordering_fields = ["slug", "name", "created_at"]

    def get_queryset(self) -> QuerySet[Team]:
        return selectors.teams_for(self.request.user).prefetch_related("memberships__user")


class ApiTokenSerializer(serializers.ModelSerializer[ApiToken]):
    class Meta:
        model = ApiToken
        fields = ["id", "name", "prefix", "created_at", "expires_at", "last_used_at", "revoked_at"]
        read_only_fields = fields


class ApiTokenCreateSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=100)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)


class ApiTokenCreatedSerializer(ApiTokenSerializer):
    token = serializers.CharField(help_text="The secret. Shown once: store it now.")

    class Meta(ApiTokenSerializer.Meta):
        fields = [*ApiTokenSerializer.Meta.fields, "token"]
        read_only_fields = fields


class ApiTokenViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[ApiToken]):
    """Your personal API tokens. Secrets are only returned by create."""

    serializer_class = ApiTokenSerializer
    search_fields = ["name", "prefix"]
    lookup_value_regex = r"\d+"

    def get_queryset(self) -> QuerySet[ApiToken]:
        return selectors.tokens_for(self.request.user)

    @extend_schema(
        request=ApiTokenCreateSerializer,
        responses={201: ApiTokenCreatedSerializer},
        examples=[OpenApiExample("CI token", value={"name": "ci-pipeline"}, request_only=True)],
    )
    def create(self, request: Request) -> Response:
        payload = ApiTokenCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        token, raw = services.create_api_token(
            actor=authenticated(request.user), request=request._request, **payload.validated_data
        )
        token.token = raw  # type: ignore[attr-defined]
        return Response(ApiTokenCreatedSerializer(token).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses=ApiTokenSerializer)
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str) -> Response:
        token = services.revoke_api_token(actor=authenticated(request.user), token_id=int(pk), request=request._request)
        return Response(ApiTokenSerializer(token).data)


class PasswordTokenSerializer(serializers.Serializer[Any]):
    username = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=4096, trim_whitespace=False, style={"input_type": "password"})
    name = serializers.CharField(max_length=100, default="paved-cli", help_text="What the token is for.")
    expires_at = serializers.DateTimeField(required=False, allow_null=True)


class PasswordTokenView(APIView):
    """`paved login`: a username and password for a new personal token, with the browser sign-in's lockout."""

    authentication_classes: list[type] = []  # the password is the credential; no session, so no CSRF
    permission_classes = [AllowAny]

    @extend_schema(
        request=PasswordTokenSerializer,
        responses={201: ApiTokenCreatedSerializer},
        summary="Sign in with a username and password and get a new personal API token (shown once)",
        auth=[],
    )
    @problem_responses(401, 429)
    def post(self, request: Request) -> Response:
        payload = PasswordTokenSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        token, raw = services.token_for_password(request=request._request, **payload.validated_data)
        token.token = raw  # type: ignore[attr-defined]
        return Response(ApiTokenCreatedSerializer(token).data, status=status.HTTP_201_CREATED)
