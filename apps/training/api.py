"""Training jobs API: your teams' jobs (submit, cancel, metrics, register the output), and job definitions
(saved jobs run on a cron schedule or by a trigger, with their firings). Thin: the job contract is checked by
`training.spec` inside the services, so the body fields below only parse JSON types."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts.selectors import authenticated, teams_for
from apps.catalog.selectors import latest_published, template_for, version_for
from apps.clusters.selectors import cluster_for
from apps.core.bodies import body_field, validated_body
from apps.core.logs import log_page
from apps.core.names import NAME_RULE
from apps.core.query import read_query
from apps.registry.api import ModelVersionSerializer
from apps.registry.models import Framework as ModelFramework
from apps.runs.api import LogQuerySerializer, LogSerializer
from apps.training import selectors
from apps.training.errors import InvalidClusterTemplate, UnknownCluster
from apps.training.filters import JobDefinitionFilterSet, TrainingJobFilterSet
from apps.training.models import (
    UNFINISHED_JOB_STATES,
    ConcurrencyPolicy,
    DefinitionFire,
    Framework,
    JobDefinition,
    TrainingJob,
)
from apps.training.services import definitions, jobs, outputs
from apps.training.services.job_clusters import NewCluster
from apps.training.spec import MAX_GPUS_PER_NODE, MAX_NODES, MAX_RETRIES, MAX_RUN_MINUTES


@extend_schema_field({"type": "array", "items": {"type": "string"}, "minItems": 1})
class CommandField(serializers.JSONField):
    """The arguments, checked by the job contract (a shell string is refused with `invalid_command`)."""


@extend_schema_field({"type": "object", "additionalProperties": {"type": "string"}})
class EnvironmentField(serializers.JSONField):
    pass


@extend_schema_field({"type": "object", "additionalProperties": True})
class HyperparametersField(serializers.JSONField):
    pass


class TrainingJobSerializer(serializers.ModelSerializer[TrainingJob]):
    team: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    owner: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(slug_field="username", read_only=True)
    cluster: serializers.PrimaryKeyRelatedField[Any] = serializers.PrimaryKeyRelatedField(
        read_only=True, allow_null=True
    )
    cluster_name = serializers.CharField(source="cluster.name", read_only=True, allow_null=True, default=None)
    command = CommandField(read_only=True)
    environment = EnvironmentField(read_only=True)
    hyperparameters = HyperparametersField(read_only=True)
    gpus = serializers.IntegerField(read_only=True, help_text="gpus_per_node x node_count.")
    exit_code = serializers.IntegerField(read_only=True, allow_null=True)
    scheduled_at = serializers.DateTimeField(read_only=True, allow_null=True)
    started_at = serializers.DateTimeField(read_only=True, allow_null=True)
    finished_at = serializers.DateTimeField(read_only=True, allow_null=True)
    queue_seconds = serializers.IntegerField(read_only=True, allow_null=True, help_text="Submitted to started.")
    run_seconds = serializers.IntegerField(read_only=True, allow_null=True, help_text="Started to finished.")
    definition: serializers.PrimaryKeyRelatedField[Any] = serializers.PrimaryKeyRelatedField(
        read_only=True, allow_null=True, help_text="The job definition that submitted it, if any."
    )
    owns_cluster = serializers.BooleanField(
        read_only=True, help_text="The cluster was requested for this job (new_cluster) and ends with it."
    )

    class Meta:
        model = TrainingJob
        fields = [
            "id", "team", "owner", "cluster", "cluster_name", "image", "command", "framework", "environment",
            "dataset_uri", "hyperparameters", "output_uri", "gpus_per_node", "node_count", "gpus", "max_run_minutes",
            "max_retries", "retries", "state", "state_reason", "exit_code", "submitted_at", "scheduled_at",
            "started_at", "finished_at", "queue_seconds", "run_seconds", "definition", "owns_cluster",
        ]  # fmt: skip
        read_only_fields = fields


class JobFieldsSerializer(serializers.Serializer[Any]):
    """The job contract's fields, as a job and a definition take them."""

    image = serializers.CharField(trim_whitespace=False, help_text="Must match TRAINING_ALLOWED_IMAGES.")
    command = CommandField(help_text='Arguments, e.g. ["python", "train.py", "--epochs", "3"].')
    framework = serializers.ChoiceField(choices=Framework.choices, default=Framework.PYTORCH)
    environment = EnvironmentField(required=False, default=dict, help_text="NAME -> value; PAVED_* is reserved.")
    dataset_uri = serializers.CharField(required=False, allow_blank=True, default="", trim_whitespace=False)
    hyperparameters = HyperparametersField(required=False, default=dict)
    output_uri = serializers.CharField(required=False, allow_blank=True, default="", trim_whitespace=False)
    gpus_per_node = serializers.IntegerField(help_text=f"1 to {MAX_GPUS_PER_NODE}.")
    node_count = serializers.IntegerField(default=1, help_text=f"1 to {MAX_NODES}.")
    max_run_minutes = serializers.IntegerField(help_text=f"1 to {MAX_RUN_MINUTES}.")
    max_retries = serializers.IntegerField(default=0, help_text=f"Retries after the job is lost, 0 to {MAX_RETRIES}.")


class NewClusterSerializer(serializers.Serializer[Any]):
    """A cluster requested for the job (node_count is the job's), terminated when the job ends."""

    instance_type = serializers.CharField(help_text="A GPU instance type with at least gpus_per_node GPUs.")
    template = serializers.SlugField(
        required=False,
        allow_blank=True,
        default="",
        help_text="A gpu_cluster catalog template whose settings the cluster takes.",
    )
    version = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        help_text="The template's version; empty: its latest published one.",
    )


class TrainingJobCreateSerializer(JobFieldsSerializer):
    team = serializers.SlugField()
    cluster = serializers.IntegerField(
        required=False, allow_null=True, default=None, help_text="One of the team's clusters; none: any that fits."
    )
    new_cluster = NewClusterSerializer(
        required=False, allow_null=True, default=None,
        help_text="Instead of cluster: a cluster made for this job, terminated when it ends.",
    )  # fmt: skip


class MetricPointSerializer(serializers.Serializer[Any]):
    step = serializers.IntegerField()
    value = serializers.FloatField(allow_null=True, help_text="null for NaN.")


class JobMetricsSerializer(serializers.Serializer[Any]):
    series = serializers.DictField(child=MetricPointSerializer(many=True), help_text="Metric key -> points by step.")
    running = serializers.BooleanField(help_text="Whether the job may log more.")


class RegisterOutputSerializer(serializers.Serializer[Any]):
    model = serializers.CharField(max_length=60, help_text="The team model to add a version to (created if new).")
    framework = serializers.ChoiceField(
        choices=ModelFramework.choices, required=False, allow_null=True, default=None,
        help_text="The model's flavour; defaults to the job's framework where that names one.",
    )  # fmt: skip
    description = serializers.CharField(max_length=4000, required=False, allow_blank=True, default="")


class TrainingJobViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet[TrainingJob]
):
    """Your teams' training jobs: where each runs or waits, and why (`state_reason`)."""

    serializer_class = TrainingJobSerializer
    lookup_value_regex = r"\d+"
    ordering_fields = ["submitted_at"]
    filterset_class = TrainingJobFilterSet

    def get_queryset(self) -> QuerySet[TrainingJob]:
        return selectors.jobs_for(self.request.user)

    @extend_schema(responses={200: JobMetricsSerializer}, summary="The job's metrics as time series")
    @action(detail=True, methods=["get"])
    def metrics(self, request: Request, pk: str) -> Response:
        return Response(selectors.job_metrics(self.get_object()))

    @extend_schema(
        responses=LogSerializer, parameters=[LogQuerySerializer], summary="The job's output, from a line offset"
    )
    @action(detail=True, methods=["get"], pagination_class=None, filter_backends=[])
    def log(self, request: Request, pk: str) -> Response:
        job = self.get_object()
        after = read_query(request, LogQuerySerializer)["after"]
        finished = job.state not in UNFINISHED_JOB_STATES
        body = log_page(job.log_chunks.all(), after, finished=finished, total_lines=selectors.next_log_line(job) - 1)
        return Response(LogSerializer(body).data)

    @extend_schema(request=TrainingJobCreateSerializer, responses={201: TrainingJobSerializer},
                   summary="Submit a training job")  # fmt: skip
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        team = get_object_or_404(teams_for(request.user), slug=body_field(request, "team"))
        data = validated_body(request, TrainingJobCreateSerializer)
        data.pop("team")
        cluster = _cluster(request, team.slug, data.pop("cluster"))
        new_cluster = _new_cluster(request, data.pop("new_cluster"))
        job = jobs.submit_job(
            actor=authenticated(request.user),
            team=team,
            cluster=cluster,
            new_cluster=new_cluster,
            request=request,
            **data,
        )
        return Response(TrainingJobSerializer(job).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: TrainingJobSerializer}, summary="Cancel the job")
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str) -> Response:
        job = jobs.cancel_job(actor=authenticated(request.user), job=self.get_object(), request=request)
        return Response(TrainingJobSerializer(job).data)

    @extend_schema(
        request=RegisterOutputSerializer,
        responses={201: ModelVersionSerializer},
        summary="Register the succeeded job's output as a model version, lineage filled in",
    )
    @action(detail=True, methods=["post"], url_path="register-model")
    def register_model(self, request: Request, pk: str) -> Response:
        job = self.get_object()
        data = validated_body(request, RegisterOutputSerializer)
        version = outputs.register_job_output(
            actor=authenticated(request.user),
            job=job,
            model_name=data["model"],
            framework=data["framework"],
            description=data["description"],
        )
        return Response(ModelVersionSerializer(version).data, status=status.HTTP_201_CREATED)


def _cluster(request: Request, team: str, cluster_id: int | None) -> Any:
    """The caller's cluster by id (none: any that fits); another team's reads as unknown."""
    if cluster_id is None:
        return None
    cluster = cluster_for(request.user, cluster_id) if 0 < cluster_id < 2**63 else None
    if cluster is None:
        raise UnknownCluster(f"Team {team} has no cluster #{cluster_id}.")
    return cluster


def _new_cluster(request: Request, fields: dict[str, Any] | None) -> NewCluster | None:
    """The body's new_cluster, its template version looked up among the catalog templates the caller sees."""
    if fields is None:
        return None
    version = None
    if fields["template"]:
        template = template_for(request.user, fields["template"])
        version = (
            None
            if template is None
            else version_for(request.user, template, fields["version"])
            if fields["version"]
            else latest_published(template)
        )
        if version is None:
            raise InvalidClusterTemplate(f"No template {fields['template']} {fields['version']} that you can use.")
    return NewCluster(instance_type=fields["instance_type"], template_version=version)


# --- Job definitions -------------------------------------------------------------------------------------------


class JobDefinitionSerializer(serializers.ModelSerializer[JobDefinition]):
    team: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    owner: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(slug_field="username", read_only=True)
    cluster: serializers.PrimaryKeyRelatedField[Any] = serializers.PrimaryKeyRelatedField(
        read_only=True, allow_null=True
    )
    command = CommandField(read_only=True)
    environment = EnvironmentField(read_only=True)
    hyperparameters = HyperparametersField(read_only=True)
    next_run_at = serializers.DateTimeField(read_only=True, allow_null=True)
    upcoming_runs = serializers.SerializerMethodField(help_text="The next cron times (UTC).")

    class Meta:
        model = JobDefinition
        fields = [
            "id", "team", "owner", "name", "description", "cluster", "image", "command", "framework", "environment",
            "dataset_uri", "hyperparameters", "output_uri", "gpus_per_node", "node_count", "max_run_minutes",
            "max_retries", "schedule", "concurrency_policy", "suspended", "register_model", "next_run_at",
            "hold_reason", "upcoming_runs", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = fields

    def get_upcoming_runs(self, definition: JobDefinition) -> list[str]:
        return [at.isoformat() for at in selectors.upcoming_runs(definition)]


class JobDefinitionInputSerializer(JobFieldsSerializer):
    cluster = serializers.IntegerField(
        required=False, allow_null=True, default=None, help_text="One of the team's clusters; none: any that fits."
    )
    description = serializers.CharField(required=False, allow_blank=True, default="", trim_whitespace=False)
    schedule = serializers.CharField(
        required=False, allow_blank=True, default="", trim_whitespace=False,
        help_text='Cron, 5 fields in UTC ("0 3 * * 1"), or @daily, @hourly, …; empty: run only when triggered.',
    )  # fmt: skip
    concurrency_policy = serializers.ChoiceField(choices=ConcurrencyPolicy.choices, default=ConcurrencyPolicy.FORBID)
    register_model = serializers.CharField(
        required=False, allow_blank=True, default="", help_text="Register each succeeded job's output as this model."
    )
    suspended = serializers.BooleanField(default=False)


class JobDefinitionCreateSerializer(JobDefinitionInputSerializer):
    team = serializers.SlugField()
    name = serializers.CharField(help_text=f"Unique in the team: {NAME_RULE}.")


class DefinitionFireSerializer(serializers.ModelSerializer[DefinitionFire]):
    actor: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    job: serializers.PrimaryKeyRelatedField[Any] = serializers.PrimaryKeyRelatedField(read_only=True, allow_null=True)
    job_state = serializers.CharField(source="job.state", read_only=True, allow_null=True, default=None)

    class Meta:
        model = DefinitionFire
        fields = ["id", "via", "actor", "due_at", "fired_at", "outcome", "reason", "job", "job_state"]
        read_only_fields = fields


class JobDefinitionViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet[JobDefinition],
):
    """Your teams' job definitions: a job saved under a name, run on a cron schedule (UTC) or by a trigger, with a
    concurrency policy (forbid, allow, replace) for a previous job still going."""

    serializer_class = JobDefinitionSerializer
    lookup_value_regex = r"\d+"
    filterset_class = JobDefinitionFilterSet

    def get_queryset(self) -> QuerySet[JobDefinition]:
        return selectors.definitions_for(self.request.user)

    @extend_schema(request=JobDefinitionCreateSerializer, responses={201: JobDefinitionSerializer},
                   summary="Define a job (scheduled or triggered)")  # fmt: skip
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        team = get_object_or_404(teams_for(request.user), slug=body_field(request, "team"))
        data = validated_body(request, JobDefinitionCreateSerializer)
        data.pop("team")
        cluster = _cluster(request, team.slug, data.pop("cluster"))
        definition = definitions.create_definition(
            actor=authenticated(request.user), team=team, cluster=cluster, request=request, **data
        )
        return Response(JobDefinitionSerializer(definition).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=JobDefinitionInputSerializer(partial=True), responses={200: JobDefinitionSerializer},
                   summary="Change a definition (a changed or resumed schedule counts from now)")  # fmt: skip
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        definition = self.get_object()
        payload = JobDefinitionInputSerializer(data=request.data, partial=True)
        payload.is_valid(raise_exception=True)
        changes = dict(payload.validated_data)
        if "cluster" in changes:
            changes["cluster"] = _cluster(request, definition.team.slug, changes["cluster"])
        definition = definitions.update_definition(
            actor=authenticated(request.user), definition=definition, changes=changes, request=request
        )
        return Response(JobDefinitionSerializer(definition).data)

    @extend_schema(summary="Delete a definition (its jobs stay)")
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        definitions.delete_definition(actor=authenticated(request.user), definition=self.get_object(), request=request)
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(request=None, responses={201: DefinitionFireSerializer},
                   summary="Run the definition now (under its concurrency policy)")  # fmt: skip
    @action(detail=True, methods=["post"])
    def trigger(self, request: Request, pk: str) -> Response:
        fire = definitions.trigger_definition(
            actor=authenticated(request.user), definition=self.get_object(), request=request
        )
        return Response(DefinitionFireSerializer(fire).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses={200: DefinitionFireSerializer(many=True)}, summary="The latest firings, newest first")
    @action(detail=True, methods=["get"])
    def fires(self, request: Request, pk: str) -> Response:
        fires = selectors.recent_fires(self.get_object())
        return Response(DefinitionFireSerializer(fires, many=True).data)
