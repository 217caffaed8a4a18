from django.urls import path

from apps.clusters import views

app_name = "clusters"

urlpatterns = [
    path("", views.cluster_list_view, name="list"),
    path("new/", views.cluster_create_view, name="create"),
    path("<int:cluster_id>/", views.cluster_detail_view, name="detail"),
    path("<int:cluster_id>/<str:action>/", views.cluster_action_view, name="action"),
]
