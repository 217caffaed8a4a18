"""The /api/v1/ router. Every list/detail resource is registered here, which is what lets the tenancy test
walk all of them automatically."""

from django.urls import path
from rest_framework.routers import DefaultRouter

from apps.accounts.api import ApiTokenViewSet, MeView, TeamViewSet
from apps.audit.api import AuditEventViewSet
from apps.catalog.api import (
    BackstageImportView,
    EstimateView,
    LaunchTemplateView,
    TemplateModuleView,
    TemplateVersionValidationView,
    TemplateViewSet,
)
from apps.clusters.api import ClusterViewSet, RegisterNodeView, TelemetryIngestView
from apps.runs.api import RunViewSet, WorkspaceViewSet


class OptionalSlashRouter(DefaultRouter):
    """Accept `/api/v1/tokens` and `/api/v1/tokens/` alike: scripts should not get a 301 on a POST."""

    def __init__(self) -> None:
        super().__init__()
        self.trailing_slash = "/?"


router = OptionalSlashRouter()
router.register("teams", TeamViewSet, basename="team")
router.register("tokens", ApiTokenViewSet, basename="token")
router.register("audit-events", AuditEventViewSet, basename="audit-event")
router.register("templates", TemplateViewSet, basename="template")
router.register("workspaces", WorkspaceViewSet, basename="workspace")
router.register("runs", RunViewSet, basename="run")
router.register("clusters", ClusterViewSet, basename="cluster")

urlpatterns = [
    path("me", MeView.as_view(), name="me"),
    path("clusters/telemetry", TelemetryIngestView.as_view(), name="cluster-telemetry"),
    path("clusters/nodes/register", RegisterNodeView.as_view(), name="cluster-node-register"),
    path("templates/import-backstage", BackstageImportView.as_view(), name="template-import-backstage"),
    path("templates/<slug:slug>/launch", LaunchTemplateView.as_view(), name="template-launch"),
    path("templates/<slug:slug>/estimate", EstimateView.as_view(), name="template-estimate"),
    path("templates/<slug:slug>/versions/<str:version>/module", TemplateModuleView.as_view(), name="template-module"),
    path(
        "templates/<slug:slug>/versions/<str:version>/validation",
        TemplateVersionValidationView.as_view(),
        name="template-validation",
    ),
    *router.urls,
]
