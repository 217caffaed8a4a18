"""Forms of the deployment pages. They check shape only; the plan, analysis and SLO contracts are
`apps/deployments/plan.py`, `analysis/spec.py` and `slo.py`, whose errors the views put back on these forms."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.db.models import QuerySet

from apps.accounts.models import Team
from apps.core.parsers import loads_bounded
from apps.deployments.models import Environment, Strategy, TargetKind
from apps.deployments.slo import DEFAULT_AVAILABILITY_PERCENT, DEFAULT_LATENCY_MS
from apps.registry.models import Model, ModelVersion


class JSONField(forms.CharField):
    """A JSON value typed into a text box (bounded like API bodies); empty is None."""

    def to_python(self, value: Any) -> Any:
        text = super().to_python(value)
        if not text:
            return None
        try:
            return loads_bounded(text)
        except ValueError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc}") from exc


class EndpointForm(forms.Form):
    team = forms.ModelChoiceField(queryset=Team.objects.none(), to_field_name="slug", empty_label=None)
    model = forms.ModelChoiceField(queryset=Model.objects.none(), empty_label=None)
    name = forms.CharField(max_length=40, help_text="Lowercase letters, digits and dashes; unique in the team.")
    target = forms.ChoiceField(choices=TargetKind.choices, initial=TargetKind.LOCAL)
    environment = forms.ChoiceField(choices=Environment.choices, initial=Environment.PRODUCTION)
    require_approval = forms.BooleanField(required=False, help_text="Each rollout waits for a manager's go.")
    slo_availability_percent = forms.FloatField(
        required=False,
        initial=DEFAULT_AVAILABILITY_PERCENT,
        label="SLO: availability (%)",
        help_text="Share of requests promised good: not 5xx and not slower than the latency objective. Leave both "
        "SLO fields empty for no SLO.",
    )
    slo_latency_ms = forms.IntegerField(
        required=False, initial=DEFAULT_LATENCY_MS, label="SLO: latency (ms)", help_text="Slower counts as bad."
    )

    def __init__(self, *args: Any, teams: QuerySet[Team], models: QuerySet[Model], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast("forms.ModelChoiceField[Any]", self.fields["team"]).queryset = teams
        cast("forms.ModelChoiceField[Any]", self.fields["model"]).queryset = models


class DeployForm(forms.Form):
    version = forms.ModelChoiceField(queryset=ModelVersion.objects.none(), empty_label=None)
    strategy = forms.ChoiceField(choices=Strategy.choices, initial=Strategy.CANARY)
    steps = JSONField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text='Canary only. Empty: 10% -> 50% -> 100%, 30 s bake each. E.g. [{"weight": 20, "bake_seconds": 60}, '
        '{"pause": true}, {"weight": 100}]',
    )
    analysis = JSONField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Empty: the default checks (error rate and p95 latency, against SLOs and the stable version). "
        'Declare a drift or quality monitor for the version with e.g. {"monitors": [{"kind": "drift"}]}.',
    )

    def __init__(self, *args: Any, versions: QuerySet[ModelVersion], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = cast("forms.ModelChoiceField[Any]", self.fields["version"])
        field.queryset = versions
        field.label_from_instance = version_label  # type: ignore[method-assign,assignment]


def version_label(version: ModelVersion) -> str:
    return f"v{version.version}" + ("" if version.approved else " (not approved)")


class ExperimentForm(forms.Form):
    version_b = forms.ModelChoiceField(queryset=ModelVersion.objects.none(), empty_label=None, label="Challenger (B)")
    weight_b = forms.IntegerField(min_value=1, max_value=99, initial=50, label="Share on B (%)")
    metric = forms.CharField(
        max_length=60, initial="error_rate", help_text="error_rate, latency, or a custom metric callers report."
    )
    duration_hours = forms.IntegerField(min_value=1, max_value=720, initial=24, label="At most (hours)")

    def __init__(self, *args: Any, versions: QuerySet[ModelVersion], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = cast("forms.ModelChoiceField[Any]", self.fields["version_b"])
        field.queryset = versions
        field.label_from_instance = version_label  # type: ignore[method-assign,assignment]
