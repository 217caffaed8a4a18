from __future__ import annotations

from django import forms


class ApiTokenForm(forms.Form):
    name = forms.CharField(
        max_length=100, help_text="What the token is for, e.g. 'ci-pipeline' or 'laptop'.", strip=True
    )
    expires_at = forms.DateTimeField(
        required=False,
        help_text="Optional. After this moment the token stops working.",
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}),
    )
