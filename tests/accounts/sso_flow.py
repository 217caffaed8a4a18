"""Drive the authorization-code flow without a browser: the Django test client is Paved's side, a requests session
the person's browser at the provider (its login form, then the authorize redirect back to Paved's callback)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from django.test import Client
from django.urls import reverse

from tests.fixtures.oidc_provider import PROVIDER_PASSWORD, OidcProvider


def sign_in(client: Client, provider: OidcProvider, username: str) -> Any:
    """Click "Sign in with <provider>", sign in at the provider, and return Paved's answer to the callback."""
    start = client.get(reverse("accounts:oidc-authenticate"))
    assert start.status_code == 302, start
    assert start["Location"].startswith(f"{provider.url}/authorize/")
    with requests.Session() as browser:
        login_page = browser.get(start["Location"], timeout=10)
        assert "/login/" in login_page.url, login_page.url
        answer = browser.post(
            login_page.url,
            data={
                "username": username,
                "password": PROVIDER_PASSWORD,
                "csrfmiddlewaretoken": browser.cookies["provider_csrftoken"],
            },
            allow_redirects=False,
            timeout=10,
        )
        # The provider's redirects (its login, then the authorization) until it sends the browser back to Paved.
        while answer.status_code == 302 and not answer.headers["Location"].startswith("http://testserver"):
            answer = browser.get(urljoin(provider.url, answer.headers["Location"]), allow_redirects=False, timeout=10)
        assert answer.status_code == 302, (answer.status_code, answer.text[:500])
    callback = urlsplit(answer.headers["Location"])
    assert callback.path == reverse("accounts:oidc-callback")
    return client.get(f"{callback.path}?{callback.query}")
