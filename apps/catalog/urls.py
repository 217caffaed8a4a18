from django.urls import path

from apps.catalog import views, workspace_views

app_name = "catalog"

urlpatterns = [
    path("", views.catalog_list_view, name="list"),
    path(
        "workspaces/<int:workspace_id>/variables/",
        workspace_views.workspace_variables_view,
        name="workspace-variables",
    ),
    path("new/", views.template_create_view, name="create"),
    path("import/", views.backstage_import_view, name="import"),
    path("schema-preview/", views.schema_preview_view, name="schema-preview"),
    path("<slug:slug>/", views.template_detail_view, name="detail"),
    path("<slug:slug>/launch/", views.launch_view, name="launch"),
    path("<slug:slug>/launch/validate/", views.launch_validate_view, name="launch-validate"),
    path("<slug:slug>/estimate/", views.estimate_view, name="estimate"),
    path("<slug:slug>/versions/new/", views.version_create_view, name="version-create"),
    path("<slug:slug>/versions/<str:version>/", views.version_detail_view, name="version-detail"),
    path("<slug:slug>/versions/<str:version>/edit/", views.version_edit_view, name="version-edit"),
    path("<slug:slug>/versions/<str:version>/<str:action>/", views.version_action_view, name="version-action"),
]
