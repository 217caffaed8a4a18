from django.urls import path

from apps.runs import views

app_name = "runs"

urlpatterns = [
    path("workspaces/", views.workspace_list_view, name="workspace-list"),
    path("workspaces/<int:workspace_id>/", views.workspace_detail_view, name="workspace-detail"),
    path("workspaces/<int:workspace_id>/<str:action>/", views.workspace_action_view, name="workspace-action"),
    path("runs/", views.run_list_view, name="run-list"),
    path("runs/<int:run_id>/", views.run_detail_view, name="run-detail"),
    path("runs/<int:run_id>/status/", views.run_status_view, name="run-status"),
    path("runs/<int:run_id>/log/", views.run_log_view, name="run-log"),
    path("runs/<int:run_id>/log.txt", views.run_log_download_view, name="run-log-download"),
    path("runs/<int:run_id>/<str:action>/", views.run_action_view, name="run-action"),
    path("platform/change-freeze/", views.change_freeze_view, name="change-freeze"),
]
