from django.urls import path

from apps.audit import views

app_name = "audit"

urlpatterns = [
    path("", views.audit_list_view, name="list"),
    path("evidence/", views.evidence_export_view, name="evidence"),
]
