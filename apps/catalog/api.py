"""Catalog API. Reads are team-scoped by selectors; curation and launch go through the same services (and
the same JSON Schema validator) as the browser, so both give the same answers and the same errors."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, PolymorphicProxySerializer, extend_schema
from rest_framework import mixins, parsers, permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.models import Team
from apps.accounts.selectors import authenticated, teams_for
from apps.catalog import selectors, services
from apps.catalog.backstage import MAX_TEMPLATE_BYTES, import_backstage_template
from apps.catalog.errors import CurationDenied, TemplateNotFound, VersionNotFound
from apps.catalog.models import (
    ApprovalPolicy,
    Tag,
    Template,
    TemplateKind,
    TemplateVersion,
)
from apps.catalog.spec.limits import ICONS, MAX_TIMEOUT_SECONDS, MAX_TTL_HOURS
from apps.core.names import NAME_RULE
from apps.core.parsers import BoundedJSONParser
from apps.costs.estimates import Estimate
from apps.runs.api import RunSerializer, WorkspaceSerializer

NOT_ANNOTATED = object()  # a template read without selectors.catalog_templates' annotations


class TemplateVersionSerializer(serializers.ModelSerializer[TemplateVersion]):
    template = serializers.CharField(source="template.slug", read_only=True)

    class Meta:
        model = TemplateVersion
        fields = [
            "template", "version", "lifecycle", "parameters_schema", "ui_schema", "module_path", "price_model",
            "default_ttl_hours", "max_ttl_hours", "approval_policy", "approval_threshold", "plan_timeout_seconds",
            "apply_timeout_seconds", "changelog", "source",
            "import_report", "created_at", "published_at", "deprecated_at", "retired_at",
        ]  # fmt: skip
        read_only_fields = fields


class TemplateSerializer(serializers.ModelSerializer[Template]):
    tags: serializers.SlugRelatedField[Tag] = serializers.SlugRelatedField(slug_field="name", many=True, read_only=True)
    owner_team = serializers.CharField(source="owner_team.slug", read_only=True, default=None, allow_null=True)
    visible_to: serializers.SlugRelatedField[Team] = serializers.SlugRelatedField(
        slug_field="slug", many=True, read_only=True
    )
    launch_count = serializers.IntegerField(read_only=True)
    latest_version = serializers.SerializerMethodField()

    class Meta:
        model = Template
        fields = [
            "slug", "name", "summary", "description", "kind", "icon", "tags", "owner_team", "visible_to_all",
            "visible_to", "launch_count", "latest_version", "created_at",
        ]  # fmt: skip
        read_only_fields = fields

    def get_latest_version(self, template: Template) -> str | None:
        annotated = getattr(template, "latest_published_version", NOT_ANNOTATED)  # no query per listed template
        if annotated is not NOT_ANNOTATED:
            return None if annotated is None else str(annotated)
        latest = selectors.latest_published(template)
        return latest.version if latest else None


class VersionContentSerializer(serializers.Serializer[Any]):
    """The editable content of a version; the same bounds as the browser's version editor."""

    version = serializers.RegexField(r"^\d+\.\d+\.\d+$", max_length=32, default="0.1.0")
    parameters_schema = serializers.DictField()
    ui_schema = serializers.DictField(required=False, default=dict)
    module_path = serializers.CharField(required=False, allow_blank=True, default="", max_length=300)
    price_model = serializers.DictField(required=False)
    default_ttl_hours = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=MAX_TTL_HOURS)
    max_ttl_hours = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=MAX_TTL_HOURS)
    approval_policy = serializers.ChoiceField(choices=ApprovalPolicy.choices, default=ApprovalPolicy.NEVER)
    approval_threshold = serializers.DecimalField(
        max_digits=12, decimal_places=2, min_value=Decimal("0"), required=False, allow_null=True
    )
    plan_timeout_seconds = serializers.IntegerField(
        required=False, allow_null=True, min_value=10, max_value=MAX_TIMEOUT_SECONDS
    )
    apply_timeout_seconds = serializers.IntegerField(
        required=False, allow_null=True, min_value=10, max_value=MAX_TIMEOUT_SECONDS
    )
    changelog = serializers.CharField(required=False, allow_blank=True, default="")


class TemplateCreateSerializer(VersionContentSerializer):
    slug = serializers.SlugField(max_length=63)
    name = serializers.CharField(max_length=100)
    summary = serializers.CharField(max_length=200)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    kind = serializers.ChoiceField(choices=TemplateKind.choices, default=TemplateKind.TERRAFORM)
    icon = serializers.ChoiceField(choices=ICONS, default="flask")
    tags = serializers.ListField(child=serializers.SlugField(max_length=40), required=False, default=list)
    owner_team = serializers.SlugRelatedField(slug_field="slug", queryset=Team.objects.all(), required=False)
    visible_to = serializers.SlugRelatedField(slug_field="slug", queryset=Team.objects.all(), many=True, required=False)


def _require_catalog_admin(request: Request) -> None:
    """Refuse callers who curate nothing before their body is read (a hostile body costs them, not us)."""
    if not selectors.is_catalog_admin(request.user):
        raise CurationDenied("Only platform admins and team admins may curate templates.")


class MayCurateTemplates(permissions.BasePermission):
    def has_permission(self, request: Request, view: APIView) -> bool:
        if request.user.is_authenticated:
            _require_catalog_admin(request)
        return bool(request.user.is_authenticated)


def _curated_version(request: Request, slug: str, version: str) -> TemplateVersion:
    """The version, refused with 404 (not visible) or 403 (not a curator of it) before the body is parsed."""
    found = _version(request, _template(request, slug), version)
    services.require_curator(actor=authenticated(request.user), template=found.template)
    return found


class DraftPatchSerializer(VersionContentSerializer):
    """Any subset of a draft's content; the module has its own endpoint (.../module)."""

    module_path = None  # type: ignore[assignment]


def patch_draft(request: Request, version: TemplateVersion) -> TemplateVersion:
    """Apply a PATCH body to a draft through the editor's service (authorized before the body is read)."""
    services.require_curator(actor=authenticated(request.user), template=version.template)
    payload = DraftPatchSerializer(data=request.data, partial=True)
    payload.is_valid(raise_exception=True)
    data = services.version_data_of(version=version)
    for name, value in payload.validated_data.items():
        setattr(data, name, value)
    return services.update_draft(
        actor=authenticated(request.user), version=version, data=data, request=request._request
    )


class EstimateSerializer(serializers.Serializer[Any]):
    currency = serializers.CharField()
    hourly = serializers.DecimalField(max_digits=14, decimal_places=4)
    monthly = serializers.DecimalField(max_digits=16, decimal_places=2)
    max_total = serializers.DecimalField(
        max_digits=16, decimal_places=2, allow_null=True, required=False,
        help_text="A launch that stops by itself (a training job): the hourly rate for its whole max run time.",
    )  # fmt: skip
    lines = serializers.ListField(child=serializers.DictField())


def estimate_data(estimate: Estimate) -> dict[str, Any]:
    return {
        "currency": estimate.currency,
        "hourly": estimate.hourly,
        "monthly": estimate.monthly,
        "max_total": estimate.max_total,
        "lines": [{"label": line.label, "hourly": str(line.hourly)} for line in estimate.lines],
    }


def _template(request: Request, slug: str) -> Template:
    template = selectors.template_for(request.user, slug)
    if template is None:
        raise TemplateNotFound(f"No template '{slug}' in your catalog.")
    return template


def _version(request: Request, template: Template, version: str | None) -> TemplateVersion:
    found = selectors.version_for(request.user, template, version) if version else selectors.latest_published(template)
    if found is None:
        wanted = f"version {version}" if version else "a published version"
        raise VersionNotFound(f"Template '{template.slug}' has no {wanted} you can use.")
    return found


class TemplateViewSet(mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet[Template]):
    """Golden-path templates you may see. Admins create templates (with a first draft) and move versions
    through draft -> published -> deprecated -> retired."""

    serializer_class = TemplateSerializer
    lookup_field = "slug"
    search_fields = ["slug", "name", "summary", "tags__name"]
    ordering_fields = ["name", "created_at", "launch_count"]
    filterset_fields = ["kind"]

    def get_queryset(self) -> QuerySet[Template]:
        templates = selectors.catalog_templates(
            self.request.user, include_drafts=selectors.is_catalog_admin(self.request.user)
        )
        return templates.select_related("owner_team").prefetch_related("visible_to")  # no query per template

    @extend_schema(request=TemplateCreateSerializer, responses={201: TemplateVersionSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        _require_catalog_admin(request)
        payload = TemplateCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        template = services.TemplateData(
            slug=data["slug"], name=data["name"], summary=data["summary"], description=data["description"],
            kind=data["kind"], icon=data["icon"], tags=data["tags"], owner_team=data.get("owner_team"),
            visible_to=data.get("visible_to") or None,
        )  # fmt: skip
        defaults = services.VersionData()
        version = services.VersionData(
            version=data["version"], parameters_schema=data["parameters_schema"], ui_schema=data["ui_schema"],
            module_path=data["module_path"], price_model=data.get("price_model") or defaults.price_model,
            default_ttl_hours=data.get("default_ttl_hours"), max_ttl_hours=data.get("max_ttl_hours"),
            approval_policy=data["approval_policy"], approval_threshold=data.get("approval_threshold"),
            plan_timeout_seconds=data.get("plan_timeout_seconds"),
            apply_timeout_seconds=data.get("apply_timeout_seconds"), changelog=data["changelog"],
        )  # fmt: skip
        draft = services.create_template(
            actor=authenticated(request.user), template=template, version=version, request=request._request
        )
        return Response(TemplateVersionSerializer(draft).data, status=status.HTTP_201_CREATED)

    @extend_schema(responses=TemplateVersionSerializer(many=True), summary="Every version you may see (a plain list)")
    @action(detail=True, methods=["get"], pagination_class=None, filter_backends=[])
    def versions(self, request: Request, slug: str) -> Response:
        template = _template(request, slug)
        return Response(TemplateVersionSerializer(selectors.versions_for(request.user, template), many=True).data)

    @extend_schema(methods=["GET"], responses=TemplateVersionSerializer)
    @extend_schema(
        methods=["PATCH"],
        request=DraftPatchSerializer,
        responses=TemplateVersionSerializer,
        summary="Edit a draft version: schema, UI hints, price model, TTLs, approval policy (curators)",
    )
    @action(detail=True, methods=["get", "patch"], url_path=r"versions/(?P<version>\d+\.\d+\.\d+)")
    def version(self, request: Request, slug: str, version: str) -> Response:
        found = _version(request, _template(request, slug), version)
        if request.method == "PATCH":
            found = patch_draft(request, found)
        return Response(TemplateVersionSerializer(found).data)

    @extend_schema(
        request=None,
        responses=TemplateVersionSerializer,
        parameters=[OpenApiParameter("move", str, "path", enum=["publish", "deprecate", "retire"])],
        summary="Publish, deprecate or retire a version (admins)",
    )
    @action(
        detail=True,
        methods=["post"],
        url_path=r"versions/(?P<version>\d+\.\d+\.\d+)/(?P<move>publish|deprecate|retire)",
    )
    def move_version(self, request: Request, slug: str, version: str, move: str) -> Response:
        found = _version(request, _template(request, slug), version)
        moved = services.LIFECYCLE_ACTIONS[move](
            actor=authenticated(request.user), version=found, request=request._request
        )
        return Response(TemplateVersionSerializer(moved).data)


class LaunchInputSerializer(serializers.Serializer[Any]):
    team = serializers.SlugField(help_text="Slug of one of your teams.")
    name = serializers.CharField(
        help_text=f"The workspace's (cluster's, experiment's, endpoint's) name: {NAME_RULE}; unique in the team."
    )
    parameters = serializers.JSONField(help_text="Values for the version's JSON Schema.")
    version = serializers.RegexField(r"^\d+\.\d+\.\d+$", required=False, help_text="Default: newest published.")
    reason = serializers.CharField(required=False, allow_blank=True, max_length=300, default="")
    ttl_hours = serializers.IntegerField(
        required=False, allow_null=True, help_text="Workspaces: hours to live (the version's bounds apply)."
    )  # its bounds are `ttl_problem`'s, so a bad TTL is reported together with the name and the parameters
    override_budget = serializers.BooleanField(
        default=False, help_text="Platform admins: launch past a budget's guardrail (audited)."
    )


class LaunchOutputSerializer(serializers.Serializer[Any]):
    """A Terraform template's launch: its new workspace and the first run."""

    workspace = WorkspaceSerializer()
    run = RunSerializer()
    estimate = EstimateSerializer()
    warnings = serializers.ListField(child=serializers.CharField(), help_text="Budget warnings, if any.")


class LaunchedClusterSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    name = serializers.CharField()
    state = serializers.CharField()


class ClusterLaunchOutputSerializer(serializers.Serializer[Any]):
    """A `gpu_cluster` template's launch: the requested cluster (follow it at /api/v1/clusters/{id}/)."""

    cluster = LaunchedClusterSerializer()
    estimate = EstimateSerializer()
    warnings = serializers.ListField(child=serializers.CharField(), help_text="Budget warnings, if any.")


class LaunchedDeploymentSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    endpoint = serializers.CharField(source="endpoint.name")
    version = serializers.IntegerField(source="version.version")
    state = serializers.CharField()


class DeploymentLaunchOutputSerializer(serializers.Serializer[Any]):
    """A `deployment` template's launch: the rollout (follow it at /api/v1/deployments/{id}/)."""

    deployment = LaunchedDeploymentSerializer()
    estimate = EstimateSerializer()
    warnings = serializers.ListField(child=serializers.CharField(), help_text="Budget warnings, if any.")


class LaunchedTrainingJobSerializer(serializers.Serializer[Any]):
    id = serializers.IntegerField()
    state = serializers.CharField()
    state_reason = serializers.CharField()


class TrainingJobLaunchOutputSerializer(serializers.Serializer[Any]):
    """A `training_job` template's launch: the queued job (follow it at /api/v1/training-jobs/{id}/)."""

    training_job = LaunchedTrainingJobSerializer()
    estimate = EstimateSerializer()
    warnings = serializers.ListField(child=serializers.CharField(), help_text="Budget warnings, if any.")


LAUNCH_RESULT = PolymorphicProxySerializer(
    component_name="LaunchResult",
    serializers=[
        LaunchOutputSerializer,
        ClusterLaunchOutputSerializer,
        DeploymentLaunchOutputSerializer,
        TrainingJobLaunchOutputSerializer,
    ],
    resource_type_field_name=None,
)


class LaunchTemplateView(APIView):
    @extend_schema(
        request=LaunchInputSerializer,
        responses={201: LAUNCH_RESULT},
        summary="Launch a template: validate, create the workspace and queue its first run",
        examples=[
            OpenApiExample(
                "Sandbox experiment",
                request_only=True,
                value={
                    "team": "vision",
                    "name": "resnet-sweep",
                    "parameters": {"experiment_name": "resnet-sweep", "framework": "pytorch", "gpu_count": 1},
                    "reason": "Trying a new augmentation",
                },
            ),
            OpenApiExample(
                "Invalid parameters",
                response_only=True,
                status_codes=["400"],
                value={
                    "type": "https://paved.dev/problems/invalid_parameters",
                    "title": "Invalid input",
                    "status": 400,
                    "detail": "Some parameters are invalid; see `errors`.",
                    "code": "invalid_parameters",
                    "errors": {"gpu_count": ["Must be at most 8."]},
                },
            ),
            OpenApiExample(
                "Several parts invalid",
                response_only=True,
                status_codes=["400"],
                value={
                    "type": "https://paved.dev/problems/invalid_launch",
                    "title": "Invalid input",
                    "status": 400,
                    "detail": "Some fields of the launch are invalid; see `errors`.",
                    "code": "invalid_launch",
                    "errors": {
                        "name": [f"A workspace name is {NAME_RULE} (e.g. 'bert-finetune')."],
                        "ttl_hours": ["The TTL may be at most 72 hours for this template."],
                        "parameters.gpu_count": ["Must be at most 8."],
                    },
                },
            ),
        ],
    )
    def post(self, request: Request, slug: str) -> Response:
        template = _template(request, slug)  # a template you cannot see is a 404 before any validation
        payload = LaunchInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        version = _version(request, template, data.get("version"))
        team = get_object_or_404(teams_for(request.user), slug=data["team"])
        result = services.launch_template(
            actor=authenticated(request.user), team=team, version=version, params=data["parameters"], name=data["name"],
            reason=data["reason"], ttl_hours=data.get("ttl_hours"), request=request._request,
            override_budget=data["override_budget"],
        )  # fmt: skip
        estimate = estimate_data(result.estimate)
        if result.cluster is not None:
            launched = {"cluster": result.cluster, "estimate": estimate, "warnings": result.warnings}
            return Response(ClusterLaunchOutputSerializer(launched).data, status=status.HTTP_201_CREATED)
        if result.training_job is not None:
            job = {"training_job": result.training_job, "estimate": estimate, "warnings": result.warnings}
            return Response(TrainingJobLaunchOutputSerializer(job).data, status=status.HTTP_201_CREATED)
        if result.deployment is not None:
            rollout = {"deployment": result.deployment, "estimate": estimate, "warnings": result.warnings}
            return Response(DeploymentLaunchOutputSerializer(rollout).data, status=status.HTTP_201_CREATED)
        body = {"workspace": result.workspace, "run": result.run, "estimate": estimate, "warnings": result.warnings}
        return Response(LaunchOutputSerializer(body).data, status=status.HTTP_201_CREATED)


class EstimateInputSerializer(serializers.Serializer[Any]):
    parameters = serializers.JSONField()
    version = serializers.RegexField(r"^\d+\.\d+\.\d+$", required=False)
    team = serializers.SlugField(required=False, help_text="With a team: the launch's budget check too.")
    ttl_hours = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=MAX_TTL_HOURS)


class BudgetCheckSerializer(serializers.Serializer[Any]):
    verdict = serializers.ChoiceField(choices=["ok", "warn", "approve", "block"])
    budget = serializers.CharField(source="budget.name", allow_null=True, default=None)
    left = serializers.DecimalField(max_digits=28, decimal_places=2, allow_null=True)
    launch_cost = serializers.DecimalField(max_digits=28, decimal_places=2)
    message = serializers.CharField()


class EstimateWithBudgetSerializer(EstimateSerializer):
    budget_check = BudgetCheckSerializer(required=False, allow_null=True)


class EstimateView(APIView):
    @extend_schema(
        request=EstimateInputSerializer,
        responses=EstimateWithBudgetSerializer,
        summary="Price parameters (with a team: and check the launch against its budgets)",
    )
    def post(self, request: Request, slug: str) -> Response:
        template = _template(request, slug)  # a template you cannot see is a 404 before any validation
        payload = EstimateInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        version = _version(request, template, data.get("version"))
        estimate = services.estimate_launch(version=version, params=data["parameters"])
        body = estimate_data(estimate)
        if data.get("team"):
            team = get_object_or_404(teams_for(request.user), slug=data["team"])
            hours = services.launch_hours(
                version=version, parameters=data["parameters"], ttl_hours=data.get("ttl_hours")
            )
            body["budget_check"] = services.budget_check_for(
                actor=authenticated(request.user), team=team, version=version, estimate=estimate, hours=hours
            )
        return Response(EstimateWithBudgetSerializer(body).data)


class BackstageImportInputSerializer(serializers.Serializer[Any]):
    content = serializers.CharField(
        help_text=f"The Backstage template.yaml text, at most {MAX_TEMPLATE_BYTES // 1024} KB (413 yaml_too_large).",
        trim_whitespace=False,
    )
    owner_team = serializers.SlugRelatedField(slug_field="slug", queryset=Team.objects.all(), required=False)


class BackstageImportView(APIView):
    permission_classes = [MayCurateTemplates]

    @extend_schema(
        request=BackstageImportInputSerializer,
        responses={201: TemplateVersionSerializer},
        summary="Import a Backstage software template as a draft (admins)",
    )
    def post(self, request: Request) -> Response:
        payload = BackstageImportInputSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        imported = import_backstage_template(payload.validated_data["content"])
        draft = services.create_template_from_backstage(
            actor=authenticated(request.user),
            imported=imported,
            owner_team=payload.validated_data.get("owner_team"),
            request=request._request,
        )
        return Response(TemplateVersionSerializer(draft).data, status=status.HTTP_201_CREATED)


# --- Curation over the API: the editor's draft edits, module attachment and validation report ------------------


class ModuleAttachSerializer(serializers.Serializer[Any]):
    archive = serializers.FileField(
        required=False, help_text=".zip or .tar.gz of .tf files, at most 5 MB (multipart/form-data)."
    )
    module_path = serializers.CharField(
        required=False, max_length=300, help_text="A shipped module folder, such as infra/templates/sandbox-experiment."
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("archive" in attrs) == ("module_path" in attrs):
            raise serializers.ValidationError("Send either an archive or a module_path, not both and not neither.")
        return attrs


class TemplateModuleView(APIView):
    parser_classes = [parsers.MultiPartParser, BoundedJSONParser]

    @extend_schema(
        request={"multipart/form-data": ModuleAttachSerializer, "application/json": ModuleAttachSerializer},
        responses=TemplateVersionSerializer,
        summary="Attach a Terraform module to a draft: an archive upload or a shipped module folder (curators)",
    )
    def post(self, request: Request, slug: str, version: str) -> Response:
        found = _curated_version(request, slug, version)
        payload = ModuleAttachSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        actor = authenticated(request.user)
        upload = payload.validated_data.get("archive")
        if upload is not None:
            found = services.attach_module_archive(
                actor=actor, version=found, name=upload.name or "", data=upload.read(), request=request._request
            )
        else:
            found = services.attach_module_folder(
                actor=actor, version=found, folder=payload.validated_data["module_path"], request=request._request
            )
        return Response(TemplateVersionSerializer(found).data)


class VersionReportSerializer(serializers.Serializer[Any]):
    ok = serializers.BooleanField()
    # The field shadows Serializer.errors, which this output-only serializer never uses.
    errors = serializers.ListField(child=serializers.CharField())  # type: ignore[assignment]
    warnings = serializers.ListField(child=serializers.CharField())


class TemplateVersionValidationView(APIView):
    @extend_schema(
        responses=VersionReportSerializer,
        summary="What must be fixed before a version can be published (curators; the version page's report)",
    )
    def get(self, request: Request, slug: str, version: str) -> Response:
        report = services.validate_version(version=_curated_version(request, slug, version))
        body = {"ok": report.ok, "errors": report.errors, "warnings": report.warnings}
        return Response(VersionReportSerializer(body).data)
