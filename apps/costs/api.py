"""The costs API (/api/v1/costs/...). Views parse, call one service or selector, and answer."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from apps.accounts.models import Team
from apps.accounts.permissions import require
from apps.accounts.selectors import authenticated, teams_for
from apps.catalog.models import Template
from apps.costs import selectors
from apps.costs.errors import BudgetDenied
from apps.costs.models import Budget, Guardrail
from apps.costs.services import budgets as budget_services

# --- Budgets ---------------------------------------------------------------------------------------------------


class BudgetStatusSerializer(serializers.Serializer[Any]):
    month = serializers.DateField()
    spent = serializers.DecimalField(max_digits=28, decimal_places=2)
    left = serializers.DecimalField(max_digits=28, decimal_places=2)
    hourly_rate = serializers.DecimalField(max_digits=28, decimal_places=4)
    forecast = serializers.DecimalField(max_digits=28, decimal_places=2)
    forecast_low = serializers.DecimalField(max_digits=28, decimal_places=2)
    forecast_high = serializers.DecimalField(max_digits=28, decimal_places=2)
    spent_percent = serializers.DecimalField(max_digits=8, decimal_places=1)
    forecast_percent = serializers.DecimalField(max_digits=8, decimal_places=1)


class BudgetSerializer(serializers.ModelSerializer[Budget]):
    team: serializers.SlugRelatedField[Team] = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    template: serializers.SlugRelatedField[Template] = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    user: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(slug_field="username", read_only=True)
    status = serializers.SerializerMethodField()

    class Meta:
        model = Budget
        fields = [
            "id", "team", "name", "monthly_amount", "currency", "template", "user", "thresholds", "guardrail",
            "notify_emails", "webhook_url", "status", "created_at",
        ]  # fmt: skip
        read_only_fields = fields

    @extend_schema_field(BudgetStatusSerializer)
    def get_status(self, budget: Budget) -> dict[str, Any]:
        return dict(BudgetStatusSerializer(selectors.budget_status(budget=budget, now=timezone.now())).data)


class BudgetInputSerializer(serializers.Serializer[Any]):
    """Shape only: the rules (amount > 0, thresholds 1..1000, a known currency, one budget per scope) are the
    service's, answered as problem details."""

    name = serializers.CharField(max_length=100)
    monthly_amount = serializers.DecimalField(max_digits=18, decimal_places=2)
    currency = serializers.CharField(max_length=3, default="USD")
    template = serializers.SlugRelatedField(
        slug_field="slug", queryset=Template.objects.all(), required=False, allow_null=True
    )
    user = serializers.CharField(required=False, allow_null=True, help_text="Username of a member of the team.")
    thresholds = serializers.ListField(child=serializers.IntegerField(), required=False)
    guardrail = serializers.ChoiceField(choices=Guardrail.choices, default=Guardrail.WARN)
    notify_emails = serializers.CharField(required=False, allow_blank=True, default="")
    webhook_url = serializers.URLField(required=False, allow_blank=True, default="")
    webhook_secret = serializers.CharField(required=False, allow_blank=True, default="", write_only=True)


class BudgetCreateSerializer(BudgetInputSerializer):
    team = serializers.SlugField(help_text="Slug of a team you manage.")


def _user_in(team: Team, username: str | None) -> Any:
    if not username:
        return None
    return get_object_or_404(team.memberships.select_related("user"), user__username=username).user


class BudgetViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet[Budget],
):
    """Monthly budgets of your teams, with this month's spend and forecast; managers create, change and delete
    them (the webhook secret is write-only)."""

    serializer_class = BudgetSerializer
    lookup_value_regex = r"\d+"
    ordering_fields = ["name", "created_at"]
    filterset_fields = ["guardrail", "currency"]

    def get_queryset(self) -> QuerySet[Budget]:
        return selectors.budgets_for(self.request.user)

    def _answer(self, budget: Budget, code: int = status.HTTP_200_OK) -> Response:
        return Response(BudgetSerializer(self.get_queryset().get(pk=budget.pk)).data, status=code)

    @extend_schema(request=BudgetCreateSerializer, responses={201: BudgetSerializer}, summary="Create a budget")
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        team = get_object_or_404(teams_for(request.user), slug=str(request.data.get("team", "")))
        require(request.user, "budget.manage", team, message="Only the team's managers set its budgets.",
                error=BudgetDenied)  # fmt: skip
        payload = BudgetCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = dict(payload.validated_data)
        data.pop("team")
        data["user"] = _user_in(team, data.pop("user", None))
        budget = budget_services.create_budget(actor=authenticated(request.user), team=team, **data)
        return self._answer(budget, status.HTTP_201_CREATED)

    @extend_schema(request=BudgetInputSerializer, responses={200: BudgetSerializer}, summary="Change a budget")
    def update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        budget = self.get_object()
        require(request.user, "budget.manage", budget, message="Only the team's managers change its budgets.",
                error=BudgetDenied)  # fmt: skip
        payload = BudgetInputSerializer(data=request.data, partial=kwargs.get("partial", False))
        payload.is_valid(raise_exception=True)
        changes = dict(payload.validated_data)
        if "user" in changes:
            changes["user"] = _user_in(budget.team, changes["user"])
        budget = budget_services.update_budget(actor=authenticated(request.user), budget=budget, **changes)
        return self._answer(budget)

    @extend_schema(summary="Delete a budget (its alerts go with it)")
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        budget_services.delete_budget(actor=authenticated(request.user), budget=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
