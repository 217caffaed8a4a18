from django.urls import path

from apps.clusters import quota_views, views

app_name = "clusters"

urlpatterns = [
    path("", views.cluster_list_view, name="list"),
    path("new/", views.cluster_create_view, name="create"),
    path("quotas/", quota_views.quota_list_view, name="quotas"),
    path("quotas/set/", quota_views.quota_set_view, name="quota-set"),
    path("quotas/exception/", quota_views.quota_exception_view, name="quota-exception"),
    path("<int:cluster_id>/", views.cluster_detail_view, name="detail"),
    path("<int:cluster_id>/<str:action>/", views.cluster_action_view, name="action"),
]
