from django.urls import path

from apps.costs import api, views

app_name = "costs"

# --- Explorer and showback ------------------------------------------------------------------------------------

urlpatterns = [
    path("", views.overview_view, name="overview"),
    path("teams/<slug:slug>/", views.team_showback_view, name="team-showback"),
    path("export/<slug:table>.csv", views.export_view, name="export"),
]

# Included by portal/api.py under /api/v1/costs/ (names in the "api" namespace).
api_urlpatterns = [
    path("explorer", api.ExplorerView.as_view(), name="cost-explorer"),
    path("estimates", api.EstimatesView.as_view(), name="cost-estimates"),
]
