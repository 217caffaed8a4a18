"""The provider's people live in `people.json` in OIDC_PROVIDER_DIR, read afresh at every sign-in and every
token: {"username": {"password": ..., "email": ..., "name": ..., "groups": [...]}}. A person without "groups"
gets no groups claim at all; "groups" may hold anything (a string, numbers) to play a misconfigured provider."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import User
from oauth2_provider.oauth2_validators import OAuth2Validator


def people() -> dict[str, dict[str, Any]]:
    return json.loads((settings.DATA_DIR / "people.json").read_text())


class PeopleFileBackend(ModelBackend):
    """Password sign-in against the people file; the provider's own user row is made on first sign-in."""

    def authenticate(self, request: Any, username: str | None = None, password: str | None = None, **kwargs: Any):
        person = people().get(username or "")
        if person is None or person["password"] != password:
            return None
        user, _ = User.objects.get_or_create(username=username)
        return user


class PeopleFileValidator(OAuth2Validator):
    # Release every claim whatever the scopes: this provider serves one client, the Paved under test.
    oidc_claim_scope = None

    def get_additional_claims(self, request: Any) -> dict[str, Any]:
        person = people()[request.user.username]
        claims = {"preferred_username": request.user.username, "email": person["email"], "name": person["name"]}
        if "groups" in person:
            claims["groups"] = person["groups"]
        return claims
