from csp.decorators import csp_update
from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from apps.ops import metrics
from apps.ops import views as ops_views
from portal import views

admin.site.site_header = "Paved administration"
admin.site.site_title = "Paved admin"
admin.site.index_title = "Platform data"

urlpatterns = [
    path("", views.home, name="home"),
    path("accounts/", include("apps.accounts.urls")),
    path("audit/", include("apps.audit.urls")),
    path("catalog/", include("apps.catalog.urls")),
    path("clusters/", include("apps.clusters.urls")),
    path("costs/", include("apps.costs.urls")),
    path("models/", include("apps.registry.urls")),
    path("deployments/", include("apps.deployments.urls")),
    path("training/", include("apps.training.urls")),
    path("dashboards/", include("apps.dashboards.urls")),
    path("feedback/", include("apps.feedback.urls")),
    path("", include("apps.runs.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/", include(("portal.api", "api"), namespace="api")),
    # MLflow's tracking REST API (apps/tracking/mlflow_api.py): MLFLOW_TRACKING_URI is the portal's address.
    path("api/2.0/mlflow/", include("apps.tracking.mlflow_api")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # Swagger UI: its init script comes from the view itself (?script), not inline; it styles itself inline.
    path(
        "api/docs/",
        csp_update({"style-src": ["'unsafe-inline'"]})(SpectacularSwaggerSplitView.as_view(url_name="api-schema")),
        name="api-docs",
    ),
    path("healthz", ops_views.healthz, name="healthz"),
    path("readyz", ops_views.readyz, name="readyz"),
    path("metrics", metrics.metrics_view, name="metrics"),
]

handler400 = "portal.views.bad_request"
handler403 = "portal.views.permission_denied"
handler404 = "portal.views.page_not_found"
handler500 = "portal.views.server_error"
