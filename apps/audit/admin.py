"""Audit events are visible to superusers in Django admin, but never addable, editable or deletable."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from apps.audit.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin[AuditEvent]):
    list_display = ["created_at", "actor_label", "team", "verb", "target_type", "target_label", "ip_address"]
    list_filter = ["verb", "team"]
    search_fields = ["actor_label", "verb", "target_label"]
    date_hierarchy = "created_at"

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        return {}

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
