from django.urls import path

from apps.costs import api, views

app_name = "costs"

urlpatterns = [
    # --- Explorer and showback ---
    path("", views.overview_view, name="overview"),
    path("teams/<slug:slug>/", views.team_showback_view, name="team-showback"),
    path("export/<slug:table>.csv", views.export_view, name="export"),
    # --- Shared costs and reconciliation ---
    path("shared-rules/", views.shared_rules_view, name="shared-rules"),
    path("shared-rules/<int:rule_id>/", views.shared_rule_edit_view, name="shared-rule-edit"),
    path("shared-rules/<int:rule_id>/delete/", views.shared_rule_delete_view, name="shared-rule-delete"),
    path("reconciliation/", views.reconciliation_view, name="reconciliation"),
    # --- Waste ---
    path("waste/", views.waste_view, name="waste"),
    # --- Budgets ---
    path("budgets/", views.budgets_view, name="budgets"),
    path("budgets/<int:budget_id>/edit/", views.budget_edit_view, name="budget-edit"),
    path("budgets/<int:budget_id>/delete/", views.budget_delete_view, name="budget-delete"),
    path("alerts/<int:alert_id>/dismiss/", views.alert_dismiss_view, name="alert-dismiss"),
]

# Included by portal/api.py under /api/v1/costs/ (names in the "api" namespace).
api_urlpatterns = [
    path("explorer", api.ExplorerView.as_view(), name="cost-explorer"),
    path("estimates", api.EstimatesView.as_view(), name="cost-estimates"),
]
