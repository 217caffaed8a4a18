"""Costs API: the same data as the cost pages (explorer groups, estimate vs actual), scoped like them."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, timedelta
from typing import Any

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.models import Team
from apps.accounts.permissions import can, require
from apps.accounts.selectors import authenticated, teams_for
from apps.catalog.models import Template
from apps.core.openapi import problem_responses
from apps.core.query import invalid, read_query
from apps.costs import selectors
from apps.costs.errors import BudgetDenied
from apps.costs.models import Budget, Guardrail, SharedCostRule
from apps.costs.money import Money
from apps.costs.selectors import shared_rules_for
from apps.costs.services import budgets as budget_services
from apps.costs.services.shared_rules import EDITABLE_FIELDS, create_shared_rule, delete_shared_rule, update_shared_rule

# --- Explorer and showback ------------------------------------------------------------------------------------

MAX_RANGE_DAYS = 366


class ExplorerQuerySerializer(serializers.Serializer[Any]):
    """The explorer's parameters, for the pages, their CSV exports and the API alike."""

    group_by = serializers.ChoiceField(choices=list(selectors.GROUP_BY_FIELDS), default="team")
    start = serializers.DateField(required=False, help_text="First day (inclusive); default: this month's first.")
    end = serializers.DateField(
        required=False, help_text="Day after the last (exclusive); default: next month's first."
    )
    team = serializers.SlugField(required=False, help_text="Only this one of your teams.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        today = timezone.now().astimezone(UTC).date()
        start = attrs.get("start") or selectors.month_start(today)
        end = attrs.get("end") or (selectors.next_month(start) if "start" in attrs else selectors.next_month(today))
        if end <= start:
            raise serializers.ValidationError({"end": "must be after start."})
        if end - start > timedelta(days=MAX_RANGE_DAYS):
            raise serializers.ValidationError({"end": f"the range may span at most {MAX_RANGE_DAYS} days."})
        return {**attrs, "start": start, "end": end}


def money(value: Money) -> dict[str, str]:
    return {"amount": str(value.rounded()), "currency": value.currency}


def scoped_team_ids(user: Any, team_slug: str | None) -> list[int]:
    """The teams a costs read covers: all the user may read, or the one named (a 400 if not theirs)."""
    if not team_slug:
        return selectors.cost_team_ids(user)
    team = Team.objects.filter(slug=team_slug).first()
    if team is None or not can(user, "costs.read", team):
        raise invalid("team", f"{team_slug[:40]!r} is not one of your teams.")
    return [team.pk]


class MoneySerializer(serializers.Serializer[Any]):
    amount = serializers.CharField(help_text="Decimal, rounded to cents.")
    currency = serializers.CharField()


class CostGroupSerializer(serializers.Serializer[Any]):
    key = serializers.CharField()
    label = serializers.CharField()  # type: ignore[assignment]  # a field named like Field.label
    kind = serializers.ChoiceField(choices=["own", "none", "shared", "unallocated"])
    total = MoneySerializer()
    daily = serializers.ListField(child=serializers.CharField(), help_text="One amount per day of the range.")


class ExplorerSerializer(serializers.Serializer[Any]):
    start = serializers.DateField()
    end = serializers.DateField()
    group_by = serializers.CharField()
    days = serializers.ListField(child=serializers.DateField())
    groups = CostGroupSerializer(many=True)
    totals = MoneySerializer(many=True)
    unallocated = MoneySerializer()
    unallocated_percent = serializers.CharField()
    top_spenders = serializers.ListField(child=serializers.DictField())


def explorer_data(result: selectors.ExplorerResult) -> dict[str, Any]:
    return {
        "start": result.start,
        "end": result.end,
        "group_by": result.group_by,
        "days": list(result.days),
        "groups": [
            {
                "key": g.key,
                "label": g.label,
                "kind": g.kind,
                "total": money(g.total),
                "daily": [str(v) for v in g.daily],
            }
            for g in result.groups
        ],
        "totals": [money(value) for value in result.totals],
        "unallocated": money(result.unallocated),
        "unallocated_percent": str(result.unallocated_percent),
        "top_spenders": [{"user": user, "spent": money(value)} for user, value in result.top_spenders],
    }


def explore_for(user: Any, query: dict[str, Any]) -> tuple[list[int], selectors.ExplorerResult]:
    """The explorer over the teams the query covers (unallocated spend too for platform admins viewing all)."""
    team_ids = scoped_team_ids(user, query.get("team"))
    result = selectors.explore(
        team_ids=team_ids,
        start=query["start"],
        end=query["end"],
        group_by=query["group_by"],
        include_unallocated=can(user, "costs.read_unallocated") and not query.get("team"),
    )
    return team_ids, result


class ExplorerView(APIView):
    @extend_schema(
        parameters=[ExplorerQuerySerializer],
        responses={200: ExplorerSerializer},
        summary="Spend of your teams grouped by one dimension over a date range (the cost explorer)",
    )
    def get(self, request: Request) -> Response:
        query = read_query(request, ExplorerQuerySerializer)
        _team_ids, result = explore_for(request.user, query)
        return Response(ExplorerSerializer(explorer_data(result)).data)


class EstimateVsActualSerializer(serializers.Serializer[Any]):
    kind = serializers.ChoiceField(choices=["workspace", "cluster"])
    id = serializers.IntegerField(source="pk")
    label = serializers.CharField()  # type: ignore[assignment]  # a field named like Field.label
    hourly = MoneySerializer()
    hours = serializers.DecimalField(max_digits=14, decimal_places=4)
    estimate = MoneySerializer()
    actual = MoneySerializer()
    error = MoneySerializer()
    error_percent = serializers.DecimalField(max_digits=14, decimal_places=1, allow_null=True)


def estimate_data(row: selectors.EstimateVsActual) -> dict[str, Any]:
    return {
        "kind": row.kind,
        "pk": row.pk,
        "label": row.label,
        "hourly": money(row.hourly),
        "hours": row.hours,
        "estimate": money(row.estimate),
        "actual": money(row.actual),
        "error": money(row.error),
        "error_percent": row.error_percent,
    }


class EstimatesView(APIView):
    @extend_schema(
        parameters=[ExplorerQuerySerializer],
        responses={200: EstimateVsActualSerializer(many=True)},
        summary="Estimate vs actual to date of each workspace and cluster that spent in the range",
    )
    def get(self, request: Request) -> Response:
        query = read_query(request, ExplorerQuerySerializer)
        team_ids = scoped_team_ids(request.user, query.get("team"))
        rows = selectors.estimates_vs_actuals(
            team_ids=team_ids, start=query["start"], end=query["end"], now=timezone.now()
        )
        return Response(EstimateVsActualSerializer([estimate_data(row) for row in rows], many=True).data)


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
    template: serializers.SlugRelatedField[Template] = serializers.SlugRelatedField(
        slug_field="slug", read_only=True, allow_null=True, help_text="The template it is narrowed to, if any."
    )
    user: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True, help_text="The user it is narrowed to, if any."
    )
    # A plain string: "" when the budget has no webhook (a `uri` format would refuse the empty value).
    webhook_url = serializers.CharField(read_only=True)
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
        if not isinstance(request.data, Mapping):  # a list or a scalar: the serializer's 400 says what it wants
            BudgetCreateSerializer(data=request.data).is_valid(raise_exception=True)
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
