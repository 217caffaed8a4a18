from django.urls import path

from apps.costs import views

app_name = "costs"

urlpatterns = [
    # --- Shared costs and reconciliation ---
    path("shared-rules/", views.shared_rules_view, name="shared-rules"),
    path("shared-rules/<int:rule_id>/", views.shared_rule_edit_view, name="shared-rule-edit"),
    path("shared-rules/<int:rule_id>/delete/", views.shared_rule_delete_view, name="shared-rule-delete"),
    path("reconciliation/", views.reconciliation_view, name="reconciliation"),
    # --- Waste ---
    path("waste/", views.waste_view, name="waste"),
]
