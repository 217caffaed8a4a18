"""The cost list pages' filters (budgets, shared-cost rules): a name search and labelled empty choices."""

from __future__ import annotations

import django_filters

from apps.accounts.filters import team_choice
from apps.core.lists import FilterForm, yes_no_filter
from apps.costs.models import Budget, Guardrail, SharedCostRule, SplitMethod


class BudgetPageFilterSet(django_filters.FilterSet):
    q = django_filters.CharFilter(field_name="name", lookup_expr="icontains", label="Name contains")
    team = team_choice()
    guardrail = django_filters.ChoiceFilter(choices=Guardrail.choices, empty_label="Any guardrail")

    class Meta:
        model = Budget
        form = FilterForm
        fields = ["q", "team", "guardrail"]


class SharedRulePageFilterSet(django_filters.FilterSet):
    q = django_filters.CharFilter(field_name="name", lookup_expr="icontains", label="Name contains")
    method = django_filters.ChoiceFilter(choices=SplitMethod.choices, empty_label="Any split", label="Split")
    active = yes_no_filter(field_name="active", label="Active", any_label="Active or not", yes="Active", no="Inactive")

    class Meta:
        model = SharedCostRule
        form = FilterForm
        fields = ["q", "method", "active"]
