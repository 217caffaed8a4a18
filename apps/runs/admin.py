from django.contrib import admin

from apps.runs.models import Run, Workspace


@admin.register(Workspace)
class WorkspaceAdmin(admin.ModelAdmin[Workspace]):
    list_display = ["name", "team", "template_version", "status", "created_by", "created_at", "expires_at"]
    list_filter = ["status", "team"]
    search_fields = ["name"]
    readonly_fields = ["parameters"]


@admin.register(Run)
class RunAdmin(admin.ModelAdmin[Run]):
    list_display = ["id", "workspace", "kind", "state", "created_by", "queued_at", "finished_at"]
    list_filter = ["state", "kind", "team"]
    readonly_fields = ["parameters", "template_version", "state"]
