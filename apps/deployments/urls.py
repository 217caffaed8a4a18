from django.urls import path

from apps.deployments import views

app_name = "deployments"

urlpatterns = [
    path("", views.deployment_list_view, name="list"),
    path("endpoints/<int:endpoint_id>/", views.endpoint_detail_view, name="endpoint"),
    path("endpoints/<int:endpoint_id>/teardown/", views.endpoint_teardown_view, name="endpoint-teardown"),
    path("<int:deployment_id>/", views.deployment_detail_view, name="detail"),
    path("<int:deployment_id>/<str:action>/", views.deployment_action_view, name="action"),
]
