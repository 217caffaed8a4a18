"""The audit page's evidence-export form: a team the user may export and whole UTC days [from, to)."""

from __future__ import annotations

from datetime import UTC, timedelta
from typing import Any

from django import forms
from django.utils import timezone

from apps.accounts.permissions import AnyUser
from apps.audit.selectors import exportable_teams_for

DEFAULT_EVIDENCE_DAYS = 30


class EvidenceExportForm(forms.Form):
    team = forms.ChoiceField(label="Team")
    start = forms.DateField(label="From (UTC, inclusive)", widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label="To (UTC, exclusive)", widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args: Any, user: AnyUser, **kwargs: Any) -> None:
        today = timezone.now().astimezone(UTC).date()
        kwargs.setdefault("initial", {"start": today - timedelta(days=DEFAULT_EVIDENCE_DAYS), "end": today})
        super().__init__(*args, **kwargs)
        # The choices come from the rule's queryset; the service checks the rule again on the chosen team.
        team_field: Any = self.fields["team"]
        team_field.choices = [(team.slug, team.name) for team in exportable_teams_for(user)]
