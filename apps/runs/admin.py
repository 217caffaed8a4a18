from typing import Any

from django.contrib import admin

from apps.runs.models import ApprovalRule, ChangeFreeze, Run, Workspace
from apps.runs.services.approvals import set_approval_rule


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


@admin.register(ApprovalRule)
class ApprovalRuleAdmin(admin.ModelAdmin[ApprovalRule]):
    list_display = ["team", "hourly_threshold", "require_for_destroy", "updated_at"]

    def save_model(self, request: Any, obj: ApprovalRule, form: Any, change: bool) -> None:
        # Through the service, so the change is audited like every other one.
        saved = set_approval_rule(
            actor=request.user,
            team=obj.team,
            hourly_threshold=obj.hourly_threshold,
            require_for_destroy=obj.require_for_destroy,
            request=request,
        )
        obj.pk = saved.pk


@admin.register(ChangeFreeze)
class ChangeFreezeAdmin(admin.ModelAdmin[ChangeFreeze]):
    """History only: start and lift freezes from the platform box on the admin index (audited)."""

    list_display = ["created_at", "active", "reason", "set_by"]

    def has_add_permission(self, request: object) -> bool:
        return False

    def has_change_permission(self, request: object, obj: object = None) -> bool:
        return False
