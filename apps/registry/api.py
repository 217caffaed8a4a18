"""Model registry API: models, their versions (immutable once registered), aliases, production approvals."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts.selectors import authenticated, teams_for
from apps.clusters.selectors import clusters_for
from apps.core.bodies import body_field, validated_body
from apps.registry import selectors, services
from apps.registry.filters import ModelVersionFilterSet
from apps.registry.models import Framework, Model, ModelVersion
from apps.runs.selectors import workspaces_for


class AliasSerializer(serializers.Serializer[Any]):
    name = serializers.SlugField()
    version = serializers.IntegerField(source="version.version")


class ModelSerializer(serializers.ModelSerializer[Model]):
    team: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    created_by: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(slug_field="username", read_only=True)
    version_count = serializers.IntegerField(read_only=True)
    aliases = AliasSerializer(many=True, read_only=True)

    class Meta:
        model = Model
        fields = ["id", "team", "name", "description", "created_by", "created_at", "version_count", "aliases"]


class ModelCreateSerializer(serializers.Serializer[Any]):
    team = serializers.SlugField()
    name = serializers.CharField(max_length=60)
    description = serializers.CharField(max_length=4000, required=False, allow_blank=True, default="")


class ModelVersionSerializer(serializers.ModelSerializer[ModelVersion]):
    model: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(slug_field="name", read_only=True)
    team: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    registered_by: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )
    production_approved_by: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    workspace: serializers.PrimaryKeyRelatedField[Any] = serializers.PrimaryKeyRelatedField(
        read_only=True, allow_null=True
    )
    cluster: serializers.PrimaryKeyRelatedField[Any] = serializers.PrimaryKeyRelatedField(
        read_only=True, allow_null=True
    )
    training_job: serializers.PrimaryKeyRelatedField[Any] = serializers.PrimaryKeyRelatedField(
        read_only=True, allow_null=True
    )
    code_committed_at = serializers.DateTimeField(read_only=True, allow_null=True)
    production_approved_at = serializers.DateTimeField(read_only=True, allow_null=True)
    archived_at = serializers.DateTimeField(read_only=True, allow_null=True)

    class Meta:
        model = ModelVersion
        fields = [
            "id", "model", "team", "version", "artifact_uri", "framework", "signature", "metrics", "parameters",
            "description", "tags", "workspace", "cluster", "training_job", "image", "dataset_uri", "dataset_hash",
            "code_commit", "code_committed_at", "status", "registered_by", "created_at", "production_approved_by",
            "production_approved_at", "archived_at",
        ]  # fmt: skip
        read_only_fields = fields


class ModelVersionCreateSerializer(serializers.Serializer[Any]):
    artifact_uri = serializers.CharField(max_length=1024)
    framework = serializers.ChoiceField(choices=Framework.choices)
    signature = serializers.JSONField(required=False)
    metrics = serializers.JSONField(required=False)
    parameters = serializers.JSONField(required=False)
    description = serializers.CharField(max_length=4000, required=False, allow_blank=True, default="")
    tags = serializers.JSONField(required=False)
    workspace = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    cluster = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    dataset_uri = serializers.CharField(max_length=1024, required=False, allow_blank=True, default="")
    dataset_hash = serializers.CharField(max_length=128, required=False, allow_blank=True, default="")
    code_commit = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    code_committed_at = serializers.DateTimeField(required=False, allow_null=True)


class AliasInputSerializer(serializers.Serializer[Any]):
    name = serializers.CharField(max_length=40)
    version = serializers.IntegerField(min_value=1, help_text="The version number (1, 2, ...).")


class TagsInputSerializer(serializers.Serializer[Any]):
    tags = serializers.JSONField()


class ModelViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet[Model]
):
    """Your teams' registered models, with their aliases; register versions and move aliases here."""

    serializer_class = ModelSerializer
    lookup_value_regex = r"\d+"
    ordering_fields = ["name", "created_at"]
    filterset_fields = ["name"]
    search_fields = ["name", "description"]

    def get_queryset(self) -> QuerySet[Model]:
        return selectors.models_for(self.request.user).prefetch_related("aliases__version")

    def _answer(self, model: Model, code: int = status.HTTP_200_OK) -> Response:
        return Response(ModelSerializer(self.get_queryset().get(pk=model.pk)).data, status=code)

    @extend_schema(request=ModelCreateSerializer, responses={201: ModelSerializer}, summary="Register a model")
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        team = get_object_or_404(teams_for(request.user), slug=body_field(request, "team"))
        data = validated_body(request, ModelCreateSerializer)
        model = services.register_model(
            actor=authenticated(request.user), team=team, name=data["name"], description=data["description"]
        )
        return self._answer(model, status.HTTP_201_CREATED)

    @extend_schema(
        request=ModelVersionCreateSerializer,
        responses={201: ModelVersionSerializer},
        summary="Register the model's next version (immutable from then on)",
    )
    @action(detail=True, methods=["post"])
    def versions(self, request: Request, pk: str) -> Response:
        model = self.get_object()
        data = validated_body(request, ModelVersionCreateSerializer)
        user = request.user
        workspace_id, cluster_id = data.pop("workspace", None), data.pop("cluster", None)
        workspace = get_object_or_404(workspaces_for(user), pk=workspace_id) if workspace_id else None
        cluster = get_object_or_404(clusters_for(user), pk=cluster_id) if cluster_id else None
        version = services.register_version(
            actor=authenticated(user), model=model, workspace=workspace, cluster=cluster, **data
        )
        return Response(ModelVersionSerializer(version).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=AliasInputSerializer, responses={200: ModelSerializer},
                   summary="Point an alias (champion, challenger...) at a version")  # fmt: skip
    @action(detail=True, methods=["post"])
    def aliases(self, request: Request, pk: str) -> Response:
        model = self.get_object()
        data = validated_body(request, AliasInputSerializer)
        version = get_object_or_404(model.versions.all(), version=data["version"])
        services.set_alias(actor=authenticated(request.user), model=model, name=data["name"], version=version)
        return self._answer(model)


class ModelVersionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet[ModelVersion]):
    """Registered versions of your teams' models, with lineage and evaluation metrics."""

    serializer_class = ModelVersionSerializer
    lookup_value_regex = r"\d+"
    ordering_fields = ["version", "created_at"]
    filterset_class = ModelVersionFilterSet

    def get_queryset(self) -> QuerySet[ModelVersion]:
        return selectors.versions_for(self.request.user)

    @extend_schema(request=None, responses={200: ModelVersionSerializer},
                   summary="Approve the version for production traffic (a team manager)")  # fmt: skip
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk: str) -> Response:
        version = services.approve_version(actor=authenticated(request.user), version=self.get_object())
        return Response(ModelVersionSerializer(version).data)

    @extend_schema(request=None, responses={200: ModelVersionSerializer}, summary="Archive the version")
    @action(detail=True, methods=["post"])
    def archive(self, request: Request, pk: str) -> Response:
        version = services.archive_version(actor=authenticated(request.user), version=self.get_object())
        return Response(ModelVersionSerializer(version).data)

    @extend_schema(request=TagsInputSerializer, responses={200: ModelVersionSerializer},
                   summary="Replace the version's tags (the one mutable annotation)")  # fmt: skip
    @action(detail=True, methods=["put"])
    def tags(self, request: Request, pk: str) -> Response:
        version = self.get_object()
        data = validated_body(request, TagsInputSerializer)
        version = services.set_version_tags(actor=authenticated(request.user), version=version, tags=data["tags"])
        return Response(ModelVersionSerializer(version).data)
