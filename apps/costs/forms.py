"""Forms of the cost pages: shape only; the rules' own checks are the services' (put back with add_to_form)."""

from __future__ import annotations

from django import forms

from apps.accounts.models import Team
from apps.costs.models import SharedCostRule
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
