from django.urls import path

from apps.runs import views

app_name = "runs"

urlpatterns = [
    path("workspaces/", views.workspace_list_view, name="workspace-list"),
    path("workspaces/<int:workspace_id>/", views.workspace_detail_view, name="workspace-detail"),
    path("runs/", views.run_list_view, name="run-list"),
]
