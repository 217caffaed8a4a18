from django.urls import path

from apps.dashboards import views

app_name = "dashboards"

urlpatterns = [
    path("", views.overview_view, name="overview"),
    path("definitions/", views.definitions_view, name="definitions"),
    path("<slug:area>/", views.area_view, name="area"),
]
