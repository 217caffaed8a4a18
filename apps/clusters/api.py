"""Cluster API. Telemetry ingest is for node agents (Node tokens), batch per node per request."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status, viewsets
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from apps.clusters.authentication import NodeTokenAuthentication
from apps.clusters.models import Cluster, Node
from apps.clusters.selectors import clusters_for, running_cost
from apps.clusters.services import ingest_telemetry

MAX_BATCHES = 360  # an hour of 10 s samples buffered by an agent during an outage
MAX_GPUS = 16


class IsNode(BasePermission):
    message = "Send telemetry with a node token: Authorization: Node <token>."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return isinstance(request.auth, Node)


class NodeRateThrottle(SimpleRateThrottle):
    """Per node: a healthy agent posts every 10 s; a flood is refused with 429 instead of filling the disk."""

    scope = "node_telemetry"
    rate = "120/min"

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        return f"node-telemetry-{request.auth.pk}" if isinstance(request.auth, Node) else None


class GpuReadingSerializer(serializers.Serializer[Any]):
    index = serializers.IntegerField(min_value=0, max_value=63)
    uuid = serializers.CharField(max_length=64, required=False, allow_blank=True)
    name = serializers.CharField(max_length=64, required=False, allow_blank=True)
    utilization_pct = serializers.FloatField(min_value=0, max_value=100)
    memory_used_mib = serializers.FloatField(min_value=0)
    memory_total_mib = serializers.FloatField(min_value=0)
    power_w = serializers.FloatField(min_value=0, required=False, allow_null=True)
    temperature_c = serializers.FloatField(min_value=-50, max_value=150, required=False, allow_null=True)
    process_count = serializers.IntegerField(min_value=0, max_value=10_000, required=False, default=0)


class BatchSerializer(serializers.Serializer[Any]):
    node = serializers.CharField(max_length=32)
    sampled_at = serializers.DateTimeField()
    gpus = serializers.ListField(child=GpuReadingSerializer(), max_length=MAX_GPUS, allow_empty=False)


class IngestResultSerializer(serializers.Serializer[Any]):
    accepted = serializers.IntegerField(help_text="Batches accepted (duplicates included: resending is safe).")
    received = serializers.IntegerField()
    stored = serializers.IntegerField()
    duplicates = serializers.IntegerField()


class TelemetryIngestView(APIView):
    authentication_classes = [NodeTokenAuthentication]
    permission_classes = [IsNode]
    throttle_classes = [NodeRateThrottle]

    @extend_schema(
        request=BatchSerializer(many=True),
        responses={202: IngestResultSerializer},
        summary="GPU samples from a node agent (a list of batches, oldest first)",
    )
    def post(self, request: Request) -> Response:
        payload = serializers.ListField(child=BatchSerializer(), max_length=MAX_BATCHES, allow_empty=False)
        batches = payload.run_validation(request.data)
        node = request.auth
        assert isinstance(node, Node)  # noqa: S101 - guaranteed by IsNode
        result = ingest_telemetry(node, list(batches))
        return Response(IngestResultSerializer(result.__dict__).data, status=status.HTTP_202_ACCEPTED)


class NodeSerializer(serializers.ModelSerializer[Node]):
    class Meta:
        model = Node
        fields = ["instance_id", "private_ip", "gpu_count", "state", "last_sample_at"]
        read_only_fields = fields


class ClusterSerializer(serializers.ModelSerializer[Cluster]):
    team = serializers.CharField(source="team.slug", read_only=True)
    owner = serializers.CharField(source="owner.username", read_only=True)
    nodes = NodeSerializer(many=True, read_only=True)
    cost_so_far = serializers.SerializerMethodField(help_text="Hourly price × running time, USD.")

    class Meta:
        model = Cluster
        fields = [
            "id", "team", "owner", "name", "region", "instance_type", "node_count", "gpus_per_node",
            "purchase_option", "purchase_option_used", "state", "state_reason", "hourly_price", "cost_so_far",
            "max_hours", "running_since", "idle_threshold_pct", "idle_window_minutes", "idle_warned_at",
            "snoozed_until", "nodes", "created_at",
        ]  # fmt: skip
        read_only_fields = fields

    def get_cost_so_far(self, cluster: Cluster) -> str:
        return str(running_cost(cluster).quantize(Decimal("0.01")))


class ClusterViewSet(viewsets.ReadOnlyModelViewSet[Cluster]):
    """GPU clusters of your teams, with their nodes and cost so far."""

    serializer_class = ClusterSerializer
    lookup_value_regex = r"\d+"
    search_fields = ["name", "instance_type"]
    ordering_fields = ["created_at", "name"]
    filterset_fields = ["state", "instance_type", "region"]

    def get_queryset(self) -> QuerySet[Cluster]:
        return clusters_for(self.request.user).select_related("team", "owner").prefetch_related("nodes")
