"""The /api/v1/ router. Every list/detail resource is registered here, which is what lets the tenancy test
walk all of them automatically."""

from django.urls import include, path, re_path
from rest_framework.routers import DefaultRouter

from apps.accounts.api import ApiTokenViewSet, MeView, PasswordTokenView, TeamViewSet
from apps.audit.api import AuditEventViewSet, EvidenceExportView
from apps.catalog.api import (
    BackstageImportView,
    EstimateView,
    LaunchTemplateView,
    TemplateModuleView,
    TemplateVersionValidationView,
    TemplateViewSet,
)
from apps.catalog.workspace_api import WorkspaceVariablesView
from apps.clusters.api import ClusterViewSet, RegisterNodeView, TelemetryIngestView
from apps.costs.api import BudgetViewSet, SharedCostRuleViewSet
from apps.costs.urls import api_urlpatterns as cost_api_urlpatterns
from apps.dashboards.api import KpiDetailView, KpiListView
from apps.deployments.api import DeploymentViewSet, EndpointViewSet, ExperimentViewSet
from apps.feedback.api import DuePromptView, SurveyPromptViewSet
from apps.registry.api import ModelVersionViewSet, ModelViewSet
from apps.runs.api import RunViewSet, WorkspaceViewSet
from apps.training.agent_api import ClaimJobView, JobExitView, JobLogView
from apps.training.api import JobDefinitionViewSet, TrainingJobViewSet


class OptionalSlashRouter(DefaultRouter):
    """Accept `/api/v1/tokens` and `/api/v1/tokens/` alike: scripts should not get a 301 on a POST."""

    def __init__(self) -> None:
        super().__init__()
        self.trailing_slash = "/?"


# The version in curation URLs, as the router's version actions spell it.
SEMVER_PATH = r"(?P<version>\d+\.\d+\.\d+)"

router = OptionalSlashRouter()
router.register("teams", TeamViewSet, basename="team")
router.register("tokens", ApiTokenViewSet, basename="token")
router.register("audit-events", AuditEventViewSet, basename="audit-event")
router.register("templates", TemplateViewSet, basename="template")
router.register("workspaces", WorkspaceViewSet, basename="workspace")
router.register("runs", RunViewSet, basename="run")
router.register("clusters", ClusterViewSet, basename="cluster")
router.register("costs/shared-rules", SharedCostRuleViewSet, basename="cost-shared-rule")

router.register("costs/budgets", BudgetViewSet, basename="budget")
router.register("models", ModelViewSet, basename="model")
router.register("model-versions", ModelVersionViewSet, basename="model-version")
router.register("endpoints", EndpointViewSet, basename="endpoint")
router.register("deployments", DeploymentViewSet, basename="deployment")
router.register("experiments", ExperimentViewSet, basename="experiment")
router.register("training-jobs", TrainingJobViewSet, basename="training-job")
router.register("job-definitions", JobDefinitionViewSet, basename="job-definition")
router.register("feedback/prompts", SurveyPromptViewSet, basename="feedback-prompt")

urlpatterns = [
    path("me", MeView.as_view(), name="me"),
    re_path(r"^auth/token/?$", PasswordTokenView.as_view(), name="auth-token"),
    path("kpis/", KpiListView.as_view(), name="kpi-list"),
    path("kpis/<slug:key>/", KpiDetailView.as_view(), name="kpi-detail"),
    path("feedback/prompt", DuePromptView.as_view(), name="feedback-prompt-due"),
    re_path(r"^audit/evidence/?$", EvidenceExportView.as_view(), name="audit-evidence"),
    path("costs/", include(cost_api_urlpatterns)),
    path("clusters/telemetry", TelemetryIngestView.as_view(), name="cluster-telemetry"),
    path("clusters/nodes/register", RegisterNodeView.as_view(), name="cluster-node-register"),
    path("training/agent/claim", ClaimJobView.as_view(), name="training-agent-claim"),
    # Named training-job-…: the tenancy walk (tests/test_api_scoping.py) finds the job model behind `pk`.
    path("training/agent/jobs/<int:pk>/logs", JobLogView.as_view(), name="training-job-agent-logs"),
    path("training/agent/jobs/<int:pk>/finish", JobExitView.as_view(), name="training-job-agent-finish"),
    path("workspaces/<int:pk>/variables", WorkspaceVariablesView.as_view(), name="workspace-variables"),
    path("templates/import-backstage", BackstageImportView.as_view(), name="template-import-backstage"),
    path("templates/<slug:slug>/launch", LaunchTemplateView.as_view(), name="template-launch"),
    path("templates/<slug:slug>/estimate", EstimateView.as_view(), name="template-estimate"),
    re_path(
        rf"^templates/(?P<slug>[-a-zA-Z0-9_]+)/versions/{SEMVER_PATH}/module$",
        TemplateModuleView.as_view(),
        name="template-module",
    ),
    re_path(
        rf"^templates/(?P<slug>[-a-zA-Z0-9_]+)/versions/{SEMVER_PATH}/validation$",
        TemplateVersionValidationView.as_view(),
        name="template-validation",
    ),
    *router.urls,
]
