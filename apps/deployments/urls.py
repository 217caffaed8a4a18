from django.urls import path

from apps.deployments import views

app_name = "deployments"

urlpatterns = [
    path("", views.deployment_list_view, name="list"),
    path("endpoints/<int:endpoint_id>/", views.endpoint_detail_view, name="endpoint"),
    path("endpoints/<int:endpoint_id>/rollback/", views.endpoint_rollback_view, name="endpoint-rollback"),
    path("endpoints/<int:endpoint_id>/teardown/", views.endpoint_teardown_view, name="endpoint-teardown"),
    path("endpoints/<int:endpoint_id>/experiments/", views.experiment_create_view, name="experiment-create"),
    path("experiments/<int:experiment_id>/", views.experiment_detail_view, name="experiment"),
    path("experiments/<int:experiment_id>/<str:action>/", views.experiment_action_view, name="experiment-action"),
    path("<int:deployment_id>/", views.deployment_detail_view, name="detail"),
    path("<int:deployment_id>/<str:action>/", views.deployment_action_view, name="action"),
]
