"""One FilterSet for the audit page and the audit API, so both filter the same way."""

from __future__ import annotations

import django_filters

from apps.audit.models import AuditEvent


class AuditEventFilterSet(django_filters.FilterSet):
    team = django_filters.CharFilter(field_name="team__slug", label="Team (slug)")
    actor = django_filters.CharFilter(field_name="actor_label", label="Actor (username)")
    verb = django_filters.CharFilter(field_name="verb", lookup_expr="startswith", label="Verb (prefix)")
    since = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte", label="From")
    until = django_filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lte", label="To")
    target_type = django_filters.CharFilter(field_name="target_type")
    target_id = django_filters.CharFilter(field_name="target_id")

    class Meta:
        model = AuditEvent
        fields = ["team", "actor", "verb", "since", "until", "target_type", "target_id"]
