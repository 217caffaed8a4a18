from django.urls import path

from apps.registry import views

app_name = "registry"

urlpatterns = [
    path("", views.model_list_view, name="list"),
    path("<int:model_id>/", views.model_detail_view, name="detail"),
    path("<int:model_id>/aliases/", views.alias_view, name="alias"),
    path("<int:model_id>/versions/<int:number>/<str:action>/", views.version_action_view, name="version-action"),
]
