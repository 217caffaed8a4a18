"""Forms of the cluster pages. They check shape only (choices, ranges); the catalog, quota and name rules are
`request_cluster`'s, and its domain errors are put back onto these forms by the view (each error names its
field)."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.db.models import QuerySet

from apps.accounts.models import Team
from apps.clusters.instance_catalog import InstanceType
from apps.clusters.models import PurchaseOption, TeamQuota
from apps.clusters.selectors import Quota
from apps.clusters.services.provisioning import MAX_NODES, MIN_NODES
from apps.core.money import format_money
from apps.core.names import NAME_PATTERN, NAME_RULE


def instance_type_label(instance: InstanceType) -> str:
    cheapest = min(price.on_demand_hourly for price in instance.prices.values())
    return f"{instance.type} ({instance.gpus} x {instance.gpu_model}, from {format_money(cheapest)} / hour on-demand)"


class ClusterRequestForm(forms.Form):
    team = forms.ModelChoiceField(queryset=Team.objects.none(), to_field_name="slug", empty_label=None)
    name = forms.CharField(
        help_text=f"{NAME_RULE}; unique in the team.",
        widget=forms.TextInput(attrs={"pattern": NAME_PATTERN, "maxlength": 40, "autocomplete": "off"}),
    )
    region = forms.ChoiceField()
    instance_type = forms.ChoiceField(label="Instance type")
    node_count = forms.IntegerField(label="Nodes", min_value=MIN_NODES, max_value=MAX_NODES, initial=1)
    purchase_option = forms.ChoiceField(
        label="Purchase option", choices=PurchaseOption.choices, initial=PurchaseOption.ON_DEMAND
    )
    max_hours = forms.IntegerField(
        label="Maximum hours",
        required=False,
        min_value=1,
        help_text="Terminated after this many hours. Empty: the team's limit.",
    )

    def __init__(self, *args: Any, teams: QuerySet[Team], catalog: dict[str, InstanceType], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast("forms.ModelChoiceField[Any]", self.fields["team"]).queryset = teams
        regions = sorted({region for instance in catalog.values() for region in instance.regions})
        cast(forms.ChoiceField, self.fields["region"]).choices = [(region, region) for region in regions]
        cast(forms.ChoiceField, self.fields["instance_type"]).choices = [
            (instance.type, instance_type_label(instance)) for instance in catalog.values()
        ]


class SnoozeForm(forms.Form):
    """Parses the snooze box; the bounds and the once-only rule are `snooze_idle_stop`'s, with its messages."""

    minutes = forms.IntegerField()
    reason = forms.CharField(required=False, max_length=300)


class TeamQuotaForm(forms.Form):
    """Shape only; the bounds (idle window within MAX_IDLE_WINDOW_MINUTES...) are `set_team_quota`'s."""

    team = forms.ModelChoiceField(queryset=Team.objects.order_by("slug"), to_field_name="slug", empty_label=None)
    max_gpus = forms.IntegerField(label="Max GPUs at once", min_value=0)
    max_cluster_hours = forms.IntegerField(label="Max hours per cluster", min_value=1)
    idle_window_minutes = forms.IntegerField(label="Idle window (minutes)", required=False, help_text="Empty: default.")
    idle_threshold_pct = forms.FloatField(label="Idle under (%)", required=False, help_text="Empty: default.")

    @classmethod
    def initial_for(cls, team: Team, quota: TeamQuota | None, effective: Quota) -> dict[str, Any]:
        """The team's current values: its own quota row, else the platform defaults it runs under now (an
        exception's extra GPUs are not part of the quota, so they are left out)."""
        return {
            "team": team.slug,
            "max_gpus": quota.max_gpus if quota else effective.max_gpus - effective.extra_gpus,
            "max_cluster_hours": effective.max_cluster_hours,
            "idle_window_minutes": quota.idle_window_minutes if quota else None,
            "idle_threshold_pct": quota.idle_threshold_pct if quota else None,
        }


class QuotaExceptionForm(forms.Form):
    team = forms.ModelChoiceField(queryset=Team.objects.order_by("slug"), to_field_name="slug", empty_label=None)
    extra_gpus = forms.IntegerField(label="Extra GPUs", min_value=1)
    hours = forms.IntegerField(label="For hours", min_value=1)
    reason = forms.CharField(max_length=300)
