"""Cluster API: clusters of your teams (request, read, stop/start/terminate/extend/snooze, nodes, telemetry) for
people; node registration (Bootstrap secret) and telemetry ingest (Node tokens, a batch per node per request)
for node agents."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from apps.accounts.selectors import authenticated, teams_for
from apps.clusters import services
from apps.clusters.authentication import BootstrapTokenAuthentication, NodeTokenAuthentication
from apps.clusters.models import Cluster, Node, PurchaseOption
from apps.clusters.selectors import clusters_for, gpu_series, running_cost, seconds_left
from apps.clusters.services import ingest_telemetry
from apps.clusters.services.limits import extend_cluster
from apps.clusters.services.provisioning import MAX_NODES, MIN_NODES
from apps.clusters.services.registration import register_node
from apps.core.limits import MAX_TTL_HOURS
from apps.core.openapi import problem_responses
from apps.core.query import read_query

MAX_BATCHES = 360  # an hour of 10 s samples buffered by an agent during an outage
MAX_GPUS = 16
MAX_TELEMETRY_MINUTES = 24 * 60  # raw samples are kept for a day by default; older ones are rolled up


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
        result = ingest_telemetry(node=node, batches=list(batches))
        return Response(IngestResultSerializer(result.__dict__).data, status=status.HTTP_202_ACCEPTED)


class NodeSerializer(serializers.ModelSerializer[Node]):
    class Meta:
        model = Node
        fields = ["instance_id", "private_ip", "gpu_count", "state", "registered_at", "last_sample_at"]
        read_only_fields = fields


class ClusterSerializer(serializers.ModelSerializer[Cluster]):
    team = serializers.CharField(source="team.slug", read_only=True)
    owner = serializers.CharField(source="owner.username", read_only=True)
    nodes = NodeSerializer(many=True, read_only=True)
    cost_so_far = serializers.SerializerMethodField(help_text="Hourly price × running time, USD.")
    hours_left = serializers.SerializerMethodField(
        help_text="Running hours left before max_hours terminates the cluster (null: no limit)."
    )

    class Meta:
        model = Cluster
        fields = [
            "id", "team", "owner", "name", "region", "instance_type", "node_count", "gpus_per_node",
            "purchase_option", "purchase_option_used", "state", "state_reason", "hourly_price", "cost_so_far",
            "max_hours", "hours_left", "running_since", "idle_threshold_pct", "idle_window_minutes",
            "idle_warned_at", "snoozed_until", "nodes", "created_at",
        ]  # fmt: skip
        read_only_fields = fields

    def get_cost_so_far(self, cluster: Cluster) -> str:
        return str(running_cost(cluster).quantize(Decimal("0.01")))

    def get_hours_left(self, cluster: Cluster) -> float | None:
        left = seconds_left(cluster)
        return None if left is None else round(left / 3600, 2)


class ClusterRequestSerializer(serializers.Serializer[Any]):
    team = serializers.SlugField(help_text="Slug of one of your teams.")
    name = serializers.CharField(max_length=40)
    region = serializers.CharField(max_length=32, default="us-east-1")
    instance_type = serializers.CharField(max_length=32)
    node_count = serializers.IntegerField(min_value=MIN_NODES, max_value=MAX_NODES, default=1)
    purchase_option = serializers.ChoiceField(choices=PurchaseOption.choices, default=PurchaseOption.ON_DEMAND)
    max_hours = serializers.IntegerField(
        min_value=1, max_value=MAX_TTL_HOURS, required=False, allow_null=True, default=None
    )


class ClusterTerminateSerializer(serializers.Serializer[Any]):
    confirm = serializers.CharField(help_text="The cluster's name, to confirm.")


class ClusterExtendSerializer(serializers.Serializer[Any]):
    # Bounds (1 to what the team's maximum per cluster leaves) are extend_cluster's: 400 invalid_max_hours.
    hours = serializers.IntegerField(help_text="Running hours to add to max_hours, up to the team's maximum.")


class ClusterSnoozeSerializer(serializers.Serializer[Any]):
    minutes = serializers.IntegerField(min_value=1)
    reason = serializers.CharField(max_length=300)


class AutostopOverrideSerializer(serializers.Serializer[Any]):
    until = serializers.DateTimeField(allow_null=True, help_text="No idle auto-stop before this; null ends it.")
    reason = serializers.CharField(max_length=300)


class TelemetryQuerySerializer(serializers.Serializer[Any]):
    minutes = serializers.IntegerField(
        min_value=1, max_value=MAX_TELEMETRY_MINUTES, default=60, help_text="How far back, in minutes."
    )


class GpuPointSerializer(serializers.Serializer[Any]):
    sampled_at = serializers.DateTimeField()
    utilization_pct = serializers.FloatField()
    memory_used_mib = serializers.FloatField()
    memory_total_mib = serializers.FloatField()
    power_w = serializers.FloatField(allow_null=True)
    temperature_c = serializers.FloatField(allow_null=True)
    process_count = serializers.IntegerField()


class GpuSeriesSerializer(serializers.Serializer[Any]):
    node = serializers.CharField(help_text="Instance id.")
    gpu_index = serializers.IntegerField()
    points = GpuPointSerializer(many=True)


class ClusterViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet[Cluster]
):
    """GPU clusters of your teams, with their nodes and cost so far; request one and act on it."""

    serializer_class = ClusterSerializer
    lookup_value_regex = r"\d+"
    search_fields = ["name", "instance_type"]
    ordering_fields = ["created_at", "name"]
    filterset_fields = ["state", "instance_type", "region"]

    def get_queryset(self) -> QuerySet[Cluster]:
        return clusters_for(self.request.user).select_related("team", "owner").prefetch_related("nodes")

    def _done(self, cluster: Cluster, code: int = status.HTTP_200_OK) -> Response:
        fresh = self.get_queryset().get(pk=cluster.pk)
        return Response(ClusterSerializer(fresh).data, status=code)

    @extend_schema(request=ClusterRequestSerializer, responses={201: ClusterSerializer},
                   summary="Request a GPU cluster (checked against the catalog and the team's quota)")  # fmt: skip
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        payload = ClusterRequestSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        team = get_object_or_404(teams_for(request.user), slug=data.pop("team"))
        cluster = services.request_cluster(actor=authenticated(request.user), team=team, **data)
        return self._done(cluster, status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: ClusterSerializer}, summary="Stop a running cluster (disks kept)")
    @action(detail=True, methods=["post"])
    @problem_responses(502)
    def stop(self, request: Request, pk: str) -> Response:
        return self._done(services.stop_cluster(actor=authenticated(request.user), cluster=self.get_object()))

    @extend_schema(request=None, responses={200: ClusterSerializer}, summary="Start a stopped cluster")
    @action(detail=True, methods=["post"])
    @problem_responses(502)
    def start(self, request: Request, pk: str) -> Response:
        return self._done(services.start_cluster(actor=authenticated(request.user), cluster=self.get_object()))

    @extend_schema(request=ClusterTerminateSerializer, responses={200: ClusterSerializer},
                   summary="Terminate every node and delete its disks (confirm with the cluster's name)")  # fmt: skip
    @action(detail=True, methods=["post"])
    @problem_responses(502)
    def terminate(self, request: Request, pk: str) -> Response:
        cluster = self.get_object()
        payload = ClusterTerminateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        confirm = payload.validated_data["confirm"]
        return self._done(
            services.request_termination(actor=authenticated(request.user), cluster=cluster, confirm_name=confirm)
        )

    @extend_schema(request=ClusterExtendSerializer, responses={200: ClusterSerializer},
                   summary="Add running hours to max_hours, up to the team's maximum per cluster")  # fmt: skip
    @action(detail=True, methods=["post"])
    def extend(self, request: Request, pk: str) -> Response:
        cluster = self.get_object()  # another team's cluster is a 404 before any validation
        payload = ClusterExtendSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        hours = payload.validated_data["hours"]
        return self._done(
            extend_cluster(actor=authenticated(request.user), cluster=cluster, hours=hours, request=request._request)
        )

    @extend_schema(request=ClusterSnoozeSerializer, responses={200: ClusterSerializer},
                   summary="Snooze idle auto-stop once, for a bounded time, with a reason")  # fmt: skip
    @action(detail=True, methods=["post"])
    def snooze(self, request: Request, pk: str) -> Response:
        cluster = self.get_object()
        payload = ClusterSnoozeSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        return self._done(
            services.snooze_idle_stop(actor=authenticated(request.user), cluster=cluster, **payload.validated_data)
        )

    @extend_schema(request=AutostopOverrideSerializer, responses={200: ClusterSerializer},
                   summary="Platform admins: no idle auto-stop until `until` (7 days at most)")  # fmt: skip
    @action(detail=True, methods=["post"], url_path="autostop-override")
    def autostop_override(self, request: Request, pk: str) -> Response:
        cluster = self.get_object()
        payload = AutostopOverrideSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        actor = authenticated(request.user)
        return self._done(services.override_autostop(actor=actor, cluster=cluster, **payload.validated_data))

    @extend_schema(responses={200: NodeSerializer(many=True)}, summary="The cluster's nodes (a plain list)")
    @action(detail=True, methods=["get"], pagination_class=None, filter_backends=[])
    def nodes(self, request: Request, pk: str) -> Response:
        return Response(NodeSerializer(self.get_object().nodes.all(), many=True).data)

    @extend_schema(
        parameters=[TelemetryQuerySerializer],
        responses={200: GpuSeriesSerializer(many=True)},
        summary="Raw GPU samples per node and GPU, oldest first",
    )
    @action(detail=True, methods=["get"], pagination_class=None, filter_backends=[])
    def telemetry(self, request: Request, pk: str) -> Response:
        minutes = read_query(request, TelemetryQuerySerializer)["minutes"]
        series = gpu_series(self.get_object(), timezone.now() - timedelta(minutes=minutes))
        data = [
            {"node": node, "gpu_index": gpu, "points": [point.__dict__ for point in points]}
            for (node, gpu), points in series.items()
        ]
        return Response(GpuSeriesSerializer(data, many=True).data)


class RegisterNodeSerializer(serializers.Serializer[Any]):
    instance_id = serializers.RegexField(r"^i-[0-9a-f]{8,17}$", help_text="The EC2 instance id of this node.")


class RegisteredNodeSerializer(serializers.Serializer[Any]):
    node = serializers.CharField(help_text="Instance id.")
    cluster = serializers.IntegerField()
    gpu_count = serializers.IntegerField()
    token = serializers.CharField(help_text="The node token (pvn_…), shown once: send telemetry with it.")


class IsBootstrap(BasePermission):
    message = "Register with the cluster's bootstrap secret: Authorization: Bootstrap <secret>."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return isinstance(request.auth, Cluster)


class RegisterRateThrottle(SimpleRateThrottle):
    """Per cluster: each node registers once; a loop of retries must not hammer the database."""

    scope = "node_register"
    rate = "60/min"

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        return f"node-register-{request.auth.pk}" if isinstance(request.auth, Cluster) else None


class RegisterNodeView(APIView):
    authentication_classes = [BootstrapTokenAuthentication]
    permission_classes = [IsBootstrap]
    throttle_classes = [RegisterRateThrottle]

    @extend_schema(
        request=RegisterNodeSerializer,
        responses={201: RegisteredNodeSerializer},
        summary="A node trades its cluster's bootstrap secret for its own token (once per node)",
    )
    def post(self, request: Request) -> Response:
        payload = RegisterNodeSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        cluster = request.auth
        assert isinstance(cluster, Cluster)  # noqa: S101 - guaranteed by IsBootstrap
        registered = register_node(
            cluster=cluster, instance_id=payload.validated_data["instance_id"], request=request._request
        )
        node = registered.node
        body = {"node": node.instance_id, "cluster": cluster.pk, "gpu_count": node.gpu_count, "token": registered.token}
        return Response(RegisteredNodeSerializer(body).data, status=status.HTTP_201_CREATED)
