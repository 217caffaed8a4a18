"""Forms of the model registry pages. They check shape only; the version contract is
`registry.services.validate_version`'s, and its errors go back on these forms by field."""

from __future__ import annotations

import json
from typing import Any, cast

from django import forms
from django.db.models import QuerySet

from apps.accounts.models import Team
from apps.core.parsers import loads_bounded
from apps.registry.models import Framework


class ModelForm(forms.Form):
    team = forms.ModelChoiceField(queryset=Team.objects.none(), to_field_name="slug", empty_label=None)
    name = forms.CharField(max_length=60, help_text="Lowercase letters, digits and dashes; unique in the team.")
    description = forms.CharField(required=False, max_length=4000, widget=forms.Textarea(attrs={"rows": 2}))

    def __init__(self, *args: Any, teams: QuerySet[Team], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast("forms.ModelChoiceField[Any]", self.fields["team"]).queryset = teams


class JSONObjectField(forms.CharField):
    """A JSON object typed into a text box (bounded like API bodies)."""

    def to_python(self, value: Any) -> Any:
        text = super().to_python(value)
        if not text:
            return None
        try:
            parsed = loads_bounded(text)
        except (ValueError, json.JSONDecodeError) as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc}") from exc
        if not isinstance(parsed, dict):
            raise forms.ValidationError('Give a JSON object, e.g. {"accuracy": 0.93}.')
        return parsed


class VersionForm(forms.Form):
    artifact_uri = forms.CharField(label="Artifact", max_length=1024, help_text="file:///... or s3://.../model.tar.gz")
    framework = forms.ChoiceField(choices=Framework.choices, initial=Framework.SKLEARN)
    metrics = JSONObjectField(required=False, help_text='Evaluation metrics, e.g. {"accuracy": 0.93}.')
    parameters = JSONObjectField(required=False, help_text="Serving settings the model needs (optional).")
    dataset_uri = forms.CharField(required=False, max_length=1024, label="Dataset")
    dataset_hash = forms.CharField(required=False, max_length=128, label="Dataset hash")
    code_commit = forms.CharField(required=False, max_length=64, label="Code commit")
    description = forms.CharField(required=False, max_length=4000, widget=forms.Textarea(attrs={"rows": 2}))


class AliasForm(forms.Form):
    name = forms.CharField(max_length=40, initial="champion")
    version = forms.IntegerField(min_value=1)
