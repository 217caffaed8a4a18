"""Forms of the cost pages: shape only; the rules' own checks are the services' (put back with add_to_form)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib.auth.models import User
from django.db.models import QuerySet

from apps.accounts.models import Team
from apps.catalog.models import Template
from apps.costs.models import Guardrail, SharedCostRule
from apps.costs.money import DEFAULT_CURRENCY
from apps.costs.services.shared_rules import EDITABLE_FIELDS

# --- Shared costs and reconciliation ---------------------------------------------------------------------------


class SharedCostRuleForm(forms.ModelForm[SharedCostRule]):
    teams = forms.ModelMultipleChoiceField(
        queryset=Team.objects.order_by("slug"),
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Split across these teams only; none ticked: every team.",
    )

    class Meta:
        model = SharedCostRule
        fields = EDITABLE_FIELDS


class ReconciliationForm(forms.Form):
    start = forms.DateField(required=False, help_text="First month (any day in it).")
    months = forms.IntegerField(required=False, min_value=1, max_value=24, initial=3)


class WasteForm(forms.Form):
    days = forms.IntegerField(required=False, min_value=1, max_value=90, initial=7, help_text="Idle cost over days.")


# --- Budgets ---------------------------------------------------------------------------------------------------


class BudgetForm(forms.Form):
    team = forms.ModelChoiceField(queryset=Team.objects.none(), to_field_name="slug", empty_label=None)
    name = forms.CharField(max_length=100)
    monthly_amount = forms.DecimalField(label="Monthly amount", max_digits=18, decimal_places=2)
    currency = forms.CharField(max_length=3, initial=DEFAULT_CURRENCY)
    template = forms.ModelChoiceField(
        queryset=Template.objects.order_by("slug"), to_field_name="slug", required=False, help_text="Empty: all."
    )
    user = forms.ModelChoiceField(
        queryset=User.objects.none(), to_field_name="username", required=False, help_text="Empty: everyone."
    )
    thresholds = forms.CharField(initial="50, 80, 100", help_text="Percentages, comma-separated.")
    guardrail = forms.ChoiceField(choices=Guardrail.choices, initial=Guardrail.WARN)
    notify_emails = forms.CharField(
        label="Notify", widget=forms.Textarea(attrs={"rows": 2}), required=False, help_text="Empty: the managers."
    )
    webhook_url = forms.URLField(label="Webhook URL", required=False, assume_scheme="https")
    webhook_secret = forms.CharField(label="Webhook secret", max_length=128, required=False)

    def __init__(self, *args: Any, teams: QuerySet[Team], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        team_field: Any = self.fields["team"]
        team_field.queryset = teams
        user_field: Any = self.fields["user"]
        user_field.queryset = User.objects.filter(memberships__team__in=teams).distinct().order_by("username")

    def clean_thresholds(self) -> list[int]:
        try:
            return [int(part) for part in self.cleaned_data["thresholds"].replace(" ", "").split(",") if part]
        except ValueError as exc:
            raise forms.ValidationError("Whole percentages, comma-separated (e.g. 50, 80, 100).") from exc
