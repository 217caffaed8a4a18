"""Deployments API: endpoints and the rollouts onto them, with every step and measurement; people's actions on a
rollout (approve, pause, resume, promote, roll back, abort) are POSTs on it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts.selectors import authenticated, teams_for
from apps.core.bodies import body_field, validated_body
from apps.core.openapi import problem_responses
from apps.deployments import selectors
from apps.deployments.filters import DeploymentFilterSet, ExperimentFilterSet
from apps.deployments.models import (
    Deployment,
    DeploymentEvent,
    Endpoint,
    Environment,
    Experiment,
    Measurement,
    Strategy,
    TargetKind,
)
from apps.deployments.services import endpoints as endpoint_services
from apps.deployments.services import experiments, rollouts
from apps.deployments.slo import DEFAULT_AVAILABILITY_PERCENT, DEFAULT_LATENCY_MS
from apps.registry.selectors import models_for, versions_for


class EndpointSerializer(serializers.ModelSerializer[Endpoint]):
    team: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    model: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(slug_field="name", read_only=True)
    stable_version = serializers.IntegerField(source="stable_version.version", read_only=True, allow_null=True)
    torn_down_at = serializers.DateTimeField(read_only=True, allow_null=True)

    class Meta:
        model = Endpoint
        fields = [
            "id", "team", "model", "name", "target", "environment", "region", "config", "require_approval",
            "slo_availability_percent", "slo_latency_ms", "stable_version", "traffic", "url", "created_at",
            "torn_down_at",
        ]  # fmt: skip
        read_only_fields = fields


class SloSerializer(serializers.Serializer[Any]):
    """Shape only: apps/deployments/slo.py is the contract (both objectives, or both null for no SLO)."""

    slo_availability_percent = serializers.FloatField(
        allow_null=True,
        default=DEFAULT_AVAILABILITY_PERCENT,
        help_text="Percent of requests promised good (not 5xx, not slower than the latency objective); null: no SLO.",
    )
    slo_latency_ms = serializers.IntegerField(
        allow_null=True, default=DEFAULT_LATENCY_MS, help_text="A request slower than this counts as bad."
    )


class EndpointCreateSerializer(SloSerializer):
    team = serializers.SlugField()
    model = serializers.IntegerField(min_value=1, help_text="The registered model's id.")
    name = serializers.CharField(max_length=40)
    target = serializers.ChoiceField(choices=TargetKind.choices, default=TargetKind.LOCAL)
    environment = serializers.ChoiceField(choices=Environment.choices, default=Environment.PRODUCTION)
    region = serializers.CharField(max_length=32, required=False, allow_blank=True, default="")
    config = serializers.JSONField(required=False)
    require_approval = serializers.BooleanField(default=False)


class EventSerializer(serializers.ModelSerializer[DeploymentEvent]):
    actor: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )

    class Meta:
        model = DeploymentEvent
        fields = ["at", "kind", "step_index", "weights", "message", "actor"]
        read_only_fields = fields


class MeasurementSerializer(serializers.ModelSerializer[Measurement]):
    value = serializers.FloatField(allow_null=True, read_only=True)
    baseline_value = serializers.FloatField(allow_null=True, read_only=True)

    class Meta:
        model = Measurement
        fields = [
            "step_index", "check_name", "metric", "phase", "value", "baseline_value", "threshold", "count",
            "baseline_count", "message", "window_start", "window_end", "measured_at",
        ]  # fmt: skip
        read_only_fields = fields


class DeploymentSerializer(serializers.ModelSerializer[Deployment]):
    team: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    endpoint: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(slug_field="name", read_only=True)
    model = serializers.CharField(source="version.model.name", read_only=True)
    version = serializers.IntegerField(source="version.version", read_only=True)
    baseline_version = serializers.IntegerField(source="baseline_version.version", read_only=True, allow_null=True)
    requested_by: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="username", read_only=True
    )
    approved_by: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    started_at = serializers.DateTimeField(read_only=True, allow_null=True)
    promoted_at = serializers.DateTimeField(read_only=True, allow_null=True)
    restored_at = serializers.DateTimeField(read_only=True, allow_null=True)
    finished_at = serializers.DateTimeField(read_only=True, allow_null=True)
    reverts: serializers.PrimaryKeyRelatedField[Any] = serializers.PrimaryKeyRelatedField(
        read_only=True, allow_null=True, help_text="The rollout an endpoint rollback undoes."
    )

    class Meta:
        model = Deployment
        fields = [
            "id", "team", "endpoint", "model", "version", "baseline_version", "strategy", "steps", "analysis",
            "state", "state_reason", "step_index", "canary_weight", "requested_by", "approved_by", "created_at",
            "started_at", "promoted_at", "restored_at", "finished_at", "reverts",
        ]  # fmt: skip
        read_only_fields = fields


class DeploymentDetailSerializer(DeploymentSerializer):
    events = EventSerializer(many=True, read_only=True)
    measurements = MeasurementSerializer(many=True, read_only=True)

    class Meta(DeploymentSerializer.Meta):
        fields = [*DeploymentSerializer.Meta.fields, "events", "measurements"]
        read_only_fields = fields


class DeploymentCreateSerializer(serializers.Serializer[Any]):
    endpoint = serializers.IntegerField(min_value=1)
    version = serializers.IntegerField(min_value=1, help_text="The model version's id.")
    strategy = serializers.ChoiceField(choices=Strategy.choices, default=Strategy.CANARY)
    steps = serializers.JSONField(required=False, help_text='[{"weight": 10, "bake_seconds": 60}, {"pause": true}]')
    analysis = serializers.JSONField(required=False)
    reason = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")


class EndpointViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet[Endpoint]
):
    """Your teams' model endpoints: what each serves, the live traffic split, the prediction URL."""

    serializer_class = EndpointSerializer
    lookup_value_regex = r"\d+"
    ordering_fields = ["name", "created_at"]
    filterset_fields = ["target", "environment"]

    def get_queryset(self) -> QuerySet[Endpoint]:
        return selectors.endpoints_for(self.request.user)

    @extend_schema(request=EndpointCreateSerializer, responses={201: EndpointSerializer}, summary="Create an endpoint")
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        team = get_object_or_404(teams_for(request.user), slug=body_field(request, "team"))
        data = validated_body(request, EndpointCreateSerializer)
        data.pop("team")
        model = get_object_or_404(models_for(request.user), pk=data.pop("model"))
        endpoint = endpoint_services.create_endpoint(actor=authenticated(request.user), team=team, model=model, **data)
        return Response(EndpointSerializer(endpoint).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: EndpointSerializer}, summary="Tear down every variant")
    @action(detail=True, methods=["post"])
    @problem_responses(502)
    def teardown(self, request: Request, pk: str) -> Response:
        endpoint = endpoint_services.teardown_endpoint(actor=authenticated(request.user), endpoint=self.get_object())
        return Response(EndpointSerializer(endpoint).data)

    @extend_schema(request=SloSerializer, responses={200: EndpointSerializer},
                   summary="Set the endpoint's SLO (both objectives null: no SLO)")  # fmt: skip
    @action(detail=True, methods=["post"])
    def slo(self, request: Request, pk: str) -> Response:
        endpoint = self.get_object()
        data = validated_body(request, SloSerializer)
        endpoint = endpoint_services.set_endpoint_slo(
            actor=authenticated(request.user),
            endpoint=endpoint,
            availability_percent=data["slo_availability_percent"],
            latency_ms=data["slo_latency_ms"],
        )
        return Response(EndpointSerializer(endpoint).data)

    @extend_schema(
        request=None,
        responses={201: DeploymentSerializer},
        summary="Roll back: the version served before the last successful rollout, 100% at once",
    )
    @action(detail=True, methods=["post"])
    def rollback(self, request: Request, pk: str) -> Response:
        deployment = rollouts.rollback_endpoint(actor=authenticated(request.user), endpoint=self.get_object())
        return Response(DeploymentSerializer(deployment).data, status=status.HTTP_201_CREATED)


class DeploymentViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet[Deployment]
):
    """Rollouts onto your teams' endpoints; the detail has the timeline and every gate measurement."""

    serializer_class = DeploymentSerializer
    lookup_value_regex = r"\d+"
    ordering_fields = ["created_at"]
    filterset_class = DeploymentFilterSet

    def get_queryset(self) -> QuerySet[Deployment]:
        if self.action == "retrieve":
            return selectors.deployment_detail(self.request.user)
        return selectors.deployments_for(self.request.user)

    def get_serializer_class(self) -> type[serializers.BaseSerializer[Any]]:
        return DeploymentDetailSerializer if self.action == "retrieve" else DeploymentSerializer

    def _answer(self, deployment: Deployment, code: int = status.HTTP_200_OK) -> Response:
        found = selectors.deployment_detail(self.request.user).get(pk=deployment.pk)
        return Response(DeploymentDetailSerializer(found).data, status=code)

    @extend_schema(request=DeploymentCreateSerializer, responses={201: DeploymentDetailSerializer},
                   summary="Start a rollout of a version onto an endpoint")  # fmt: skip
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        endpoint_id = request.data.get("endpoint") if isinstance(request.data, Mapping) else None
        if not isinstance(endpoint_id, int) or isinstance(endpoint_id, bool):
            validated_body(request, DeploymentCreateSerializer)  # says what is wrong
        endpoint = get_object_or_404(selectors.endpoints_for(request.user), pk=endpoint_id)
        data = validated_body(request, DeploymentCreateSerializer)
        version = get_object_or_404(versions_for(request.user), pk=data["version"])
        deployment = rollouts.start_deployment(
            actor=authenticated(request.user),
            endpoint=endpoint,
            version=version,
            strategy=data["strategy"],
            steps=data.get("steps"),
            analysis=data.get("analysis"),
            reason=data["reason"],
        )
        return self._answer(deployment, status.HTTP_201_CREATED)

    def _act(self, request: Request, service: Callable[..., Deployment]) -> Response:
        deployment = service(actor=authenticated(request.user), deployment=self.get_object())
        return self._answer(deployment)

    @extend_schema(request=None, responses={200: DeploymentDetailSerializer}, summary="Approve (a team manager)")
    @action(detail=True, methods=["post"])
    def approve(self, request: Request, pk: str) -> Response:
        return self._act(request, rollouts.approve)

    @extend_schema(request=None, responses={200: DeploymentDetailSerializer}, summary="Pause at the current step")
    @action(detail=True, methods=["post"])
    def pause(self, request: Request, pk: str) -> Response:
        return self._act(request, rollouts.pause)

    @extend_schema(request=None, responses={200: DeploymentDetailSerializer}, summary="Resume a paused rollout")
    @action(detail=True, methods=["post"])
    def resume(self, request: Request, pk: str) -> Response:
        return self._act(request, rollouts.resume)

    @extend_schema(request=None, responses={200: DeploymentDetailSerializer},
                   summary="Promote now (skip the remaining steps)")  # fmt: skip
    @action(detail=True, methods=["post"])
    def promote(self, request: Request, pk: str) -> Response:
        return self._act(request, rollouts.promote)

    @extend_schema(request=None, responses={200: DeploymentDetailSerializer},
                   summary="Roll back: all traffic to the stable version")  # fmt: skip
    @action(detail=True, methods=["post"])
    def rollback(self, request: Request, pk: str) -> Response:
        return self._act(request, rollouts.rollback)

    @extend_schema(request=None, responses={200: DeploymentDetailSerializer}, summary="Abort the rollout")
    @action(detail=True, methods=["post"])
    def abort(self, request: Request, pk: str) -> Response:
        return self._act(request, rollouts.abort)


class ExperimentSerializer(serializers.ModelSerializer[Experiment]):
    team: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    endpoint: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(slug_field="name", read_only=True)
    version_a = serializers.IntegerField(source="version_a.version", read_only=True)
    version_b = serializers.IntegerField(source="version_b.version", read_only=True)
    started_at = serializers.DateTimeField(read_only=True, allow_null=True)
    ends_at = serializers.DateTimeField(read_only=True, allow_null=True)
    concluded_at = serializers.DateTimeField(read_only=True, allow_null=True)

    class Meta:
        model = Experiment
        fields = [
            "id", "team", "endpoint", "name", "version_a", "version_b", "weight_b", "metric", "alpha",
            "duration_seconds", "state", "state_reason", "winner", "result", "started_at", "ends_at", "concluded_at",
        ]  # fmt: skip
        read_only_fields = fields


class ExperimentCreateSerializer(serializers.Serializer[Any]):
    endpoint = serializers.IntegerField(min_value=1)
    version_b = serializers.IntegerField(min_value=1, help_text="The challenger version's id; arm A is what serves.")
    name = serializers.CharField(max_length=80, required=False, allow_blank=True, default="")
    weight_b = serializers.IntegerField(min_value=1, max_value=99, default=50)
    metric = serializers.CharField(max_length=60, default="error_rate")
    alpha = serializers.FloatField(min_value=0.001, max_value=0.2, default=0.05)
    duration_seconds = serializers.IntegerField(min_value=60, max_value=30 * 24 * 3600, default=24 * 3600)


class ObservationInputSerializer(serializers.Serializer[Any]):
    arm = serializers.ChoiceField(choices=["a", "b"])
    value = serializers.FloatField()


class ExperimentViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet[Experiment]
):
    """A/B tests on your teams' endpoints, with per-arm figures and the sequential test's verdict."""

    serializer_class = ExperimentSerializer
    lookup_value_regex = r"\d+"
    ordering_fields = ["created_at"]
    filterset_class = ExperimentFilterSet

    def get_queryset(self) -> QuerySet[Experiment]:
        return selectors.experiments_for(self.request.user)

    @extend_schema(request=ExperimentCreateSerializer, responses={201: ExperimentSerializer},
                   summary="Start an A/B test between the served version and a challenger")  # fmt: skip
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        endpoint_id = request.data.get("endpoint") if isinstance(request.data, Mapping) else None
        if not isinstance(endpoint_id, int) or isinstance(endpoint_id, bool):
            validated_body(request, ExperimentCreateSerializer)
        endpoint = get_object_or_404(selectors.endpoints_for(request.user), pk=endpoint_id)
        data = validated_body(request, ExperimentCreateSerializer)
        data.pop("endpoint")
        version = get_object_or_404(versions_for(request.user), pk=data.pop("version_b"))
        experiment = experiments.start_experiment(
            actor=authenticated(request.user), endpoint=endpoint, version_b=version, **data
        )
        return Response(ExperimentSerializer(experiment).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: ExperimentSerializer}, summary="Promote the winner")
    @action(detail=True, methods=["post"])
    @problem_responses(502)
    def promote(self, request: Request, pk: str) -> Response:
        found = experiments.promote_winner(actor=authenticated(request.user), experiment=self.get_object())
        return Response(ExperimentSerializer(found).data)

    @extend_schema(request=None, responses={200: ExperimentSerializer}, summary="Stop: 100% back on arm A")
    @action(detail=True, methods=["post"])
    @problem_responses(502)
    def stop(self, request: Request, pk: str) -> Response:
        found = experiments.stop_experiment(actor=authenticated(request.user), experiment=self.get_object())
        return Response(ExperimentSerializer(found).data)

    @extend_schema(request=ObservationInputSerializer, responses={201: ExperimentSerializer},
                   summary="Report a custom metric value for one arm (a conversion, a rating)")  # fmt: skip
    @action(detail=True, methods=["post"])
    def observations(self, request: Request, pk: str) -> Response:
        experiment = self.get_object()
        data = validated_body(request, ObservationInputSerializer)
        experiments.observe(actor=authenticated(request.user), experiment=experiment, **data)
        return Response(ExperimentSerializer(experiment).data, status=status.HTTP_201_CREATED)
