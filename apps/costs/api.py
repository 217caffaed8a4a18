"""The costs API (thin: parse, authorize, call a service or a selector, render)."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts.models import Team
from apps.accounts.permissions import require
from apps.accounts.selectors import authenticated
from apps.core.openapi import problem_responses
from apps.costs.models import SharedCostRule
from apps.costs.selectors import shared_rules_for
from apps.costs.services.shared_rules import EDITABLE_FIELDS, create_shared_rule, delete_shared_rule, update_shared_rule

# --- Shared costs and reconciliation ---------------------------------------------------------------------------


class SharedCostRuleSerializer(serializers.ModelSerializer[SharedCostRule]):
    teams: serializers.SlugRelatedField[Team] = serializers.SlugRelatedField(
        slug_field="slug", many=True, queryset=Team.objects.all(), required=False, help_text="Empty: every team."
    )
    created_by: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = SharedCostRule
        fields = ["id", *EDITABLE_FIELDS, "created_by", "created_at", "updated_at"]
        read_only_fields = ["id", "created_by", "created_at", "updated_at"]


def _require_rule_admin(request: Request) -> None:
    require(request.user, "costs.manage_shared_rules", message="Only platform admins manage shared-cost rules.")


class SharedCostRuleViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet[SharedCostRule],
):
    """Shared-cost rules: which shared or unallocated spend is split across teams, and how. Everyone sees the rules
    that split onto their teams; only platform admins create, change or delete them (each change rebuilds the
    affected days' rollups)."""

    serializer_class = SharedCostRuleSerializer
    lookup_value_regex = r"\d+"
    search_fields = ["name", "product_code", "usage_type_contains"]
    ordering_fields = ["priority", "name"]

    def get_queryset(self) -> QuerySet[SharedCostRule]:
        return shared_rules_for(self.request.user)

    def _rendered(self, rule: SharedCostRule, code: int = status.HTTP_200_OK) -> Response:
        return Response(SharedCostRuleSerializer(self.get_queryset().get(pk=rule.pk)).data, status=code)

    @extend_schema(summary="Create a shared-cost rule (platform admins)")
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        _require_rule_admin(request)
        payload = SharedCostRuleSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        rule = create_shared_rule(actor=authenticated(request.user), **payload.validated_data)
        return self._rendered(rule, status.HTTP_201_CREATED)

    @extend_schema(summary="Change a shared-cost rule (platform admins)")
    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        rule = self.get_object()  # a rule the caller cannot see is a 404, as for every other resource
        _require_rule_admin(request)
        partial = kwargs.pop("partial", False)
        payload = SharedCostRuleSerializer(rule, data=request.data, partial=partial)
        payload.is_valid(raise_exception=True)
        changes = dict(payload.validated_data)
        teams = changes.pop("teams", None)
        rule = update_shared_rule(actor=authenticated(request.user), rule=rule, teams=teams, **changes)
        return self._rendered(rule)

    @extend_schema(summary="Delete a shared-cost rule (platform admins)")
    @problem_responses(413, 415)  # the body limits apply to every method that may carry one
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        rule = self.get_object()
        _require_rule_admin(request)
        delete_shared_rule(actor=authenticated(request.user), rule=rule)
        return Response(status=status.HTTP_204_NO_CONTENT)
