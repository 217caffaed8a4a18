from django.urls import path

from apps.costs import views

app_name = "costs"

urlpatterns = [
    # --- Budgets ---
    path("budgets/", views.budgets_view, name="budgets"),
    path("budgets/<int:budget_id>/edit/", views.budget_edit_view, name="budget-edit"),
    path("budgets/<int:budget_id>/delete/", views.budget_delete_view, name="budget-delete"),
    path("alerts/<int:alert_id>/dismiss/", views.alert_dismiss_view, name="alert-dismiss"),
]
