"""The OpenID Connect relying party: mozilla-django-oidc's authorization-code flow (with PKCE and a nonce), wired to
Paved's settings, the issuer's discovery document and `apps.accounts.sso` (what a sign-in does).

Off unless OIDC_CLIENT_ID and either OIDC_ISSUER or the endpoint URLs are set (portal/settings.py): then the
routes answer 404 and the backend answers nothing. An endpoint left empty is read from
`<issuer>/.well-known/openid-configuration`, fetched when first needed and cached for an hour, so a provider that
is down fails a sign-in with a message, never the start of the portal.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode, urlsplit

import requests
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.models import User
from django.core.cache import cache
from django.core.exceptions import SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect
from django.urls import reverse
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.utils import import_from_settings
from mozilla_django_oidc.views import OIDCAuthenticationCallbackView, OIDCAuthenticationRequestView

from apps.accounts import services, sso
from apps.accounts.errors import SsoSignInRefused

logger = logging.getLogger(__name__)

DISCOVERY_CACHE_SECONDS = 3600
# mozilla-django-oidc's endpoint settings and their names in a discovery document.
_DISCOVERED = {
    "OIDC_OP_AUTHORIZATION_ENDPOINT": "authorization_endpoint",
    "OIDC_OP_TOKEN_ENDPOINT": "token_endpoint",
    "OIDC_OP_USER_ENDPOINT": "userinfo_endpoint",
    "OIDC_OP_JWKS_ENDPOINT": "jwks_uri",
    "OIDC_OP_END_SESSION_ENDPOINT": "end_session_endpoint",
}
ID_TOKEN_SESSION_KEY = "oidc_id_token"  # noqa: S105  (a session key, not a secret) where mozilla-django-oidc keeps it (OIDC_STORE_ID_TOKEN)


def enabled() -> bool:
    return bool(settings.OIDC_RP_CLIENT_ID and (settings.OIDC_ISSUER or settings.OIDC_OP_AUTHORIZATION_ENDPOINT))


def provider_name() -> str | None:
    """What the login page's button says ("Sign in with <name>"); None while SSO is off."""
    return settings.OIDC_PROVIDER_NAME if enabled() else None


def discovery() -> dict[str, Any]:
    """The issuer's discovery document ({} without OIDC_ISSUER); raises requests.RequestException when the
    provider cannot be reached and SsoSignInRefused when the document names another issuer."""
    issuer = settings.OIDC_ISSUER
    if not issuer:
        return {}
    key = f"paved:oidc-discovery:{issuer}"
    document: dict[str, Any] | None = cache.get(key)
    if document is None:
        response = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=settings.OIDC_TIMEOUT)
        response.raise_for_status()
        document = response.json()
        if str(document.get("issuer", "")).rstrip("/") != issuer:
            raise SsoSignInRefused(
                f"The discovery document of {issuer} names another issuer; check OIDC_ISSUER.",
                code="sso_issuer_mismatch",
            )
        cache.set(key, document, DISCOVERY_CACHE_SECONDS)
    return document


def setting(name: str, *default: Any) -> Any:
    """mozilla-django-oidc's settings lookup, with empty endpoints read from the discovery document."""
    value = import_from_settings(name, *default)
    if name in _DISCOVERED and not value:
        return discovery().get(_DISCOVERED[name]) or value
    return value


def end_session_url(request: HttpRequest) -> str | None:
    """Where sign-out sends a browser that signed in through the provider (RP-initiated logout, with the id token
    as id_token_hint and the login page to come back to); None for local sessions or a provider without one."""
    id_token = request.session.get(ID_TOKEN_SESSION_KEY)
    if not enabled() or not id_token:
        return None
    try:
        endpoint = setting("OIDC_OP_END_SESSION_ENDPOINT")
    except (requests.RequestException, SsoSignInRefused) as exc:
        logger.warning("SSO sign-out: the provider's end-session endpoint is unknown (%s)", exc)
        return None
    if not endpoint:
        return None
    query = urlencode(
        {
            "id_token_hint": id_token,
            "post_logout_redirect_uri": request.build_absolute_uri(reverse("accounts:login")),
            "client_id": settings.OIDC_RP_CLIENT_ID,
        }
    )
    return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"


def end_session_origin(request: HttpRequest) -> str | None:
    """The provider origin the sign-out form is redirected to, for the pages' CSP form-action; None if none."""
    url = end_session_url(request)
    if url is None:
        return None
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class Backend(OIDCAuthenticationBackend):
    """Answers the provider's callback only (the callback view passes `nonce`); everything else, the local login
    form included, goes to ModelBackend. Settings are read per sign-in, not when Django loads the backend."""

    get_settings = staticmethod(setting)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.UserModel = get_user_model()

    def authenticate(self, request: HttpRequest | None, **kwargs: Any) -> User | None:
        if request is None or "nonce" not in kwargs or not enabled():
            return None
        try:
            super().__init__()
            user: User | None = super().authenticate(request, **kwargs)
        except requests.RequestException as exc:
            logger.warning("SSO sign-in: the provider did not answer as expected: %s", exc)
            raise SsoSignInRefused(
                f"{settings.OIDC_PROVIDER_NAME} did not answer the sign-in. Try again in a moment.",
                code="sso_unavailable",
            ) from exc
        except SuspiciousOperation as exc:
            logger.warning("SSO sign-in: the provider's answer did not verify: %s", exc)
            raise SsoSignInRefused(
                f"The answer of {settings.OIDC_PROVIDER_NAME} did not verify, so you were not signed in.",
                code="sso_unverified",
            ) from exc
        return user

    def get_user(self, user_id: int) -> User | None:
        """ModelBackend's: a user deactivated in Paved loses the session they opened through the provider."""
        user: User | None = ModelBackend.get_user(self, user_id)
        return user

    def verify_token(self, token: str, **kwargs: Any) -> dict[str, Any]:
        """The library checks the signature, expiry and nonce; the audience and the issuer are checked here."""
        payload: dict[str, Any] = super().verify_token(token, **kwargs)
        audience = payload.get("aud")
        audiences = [audience] if isinstance(audience, str) else list(audience or [])
        if self.OIDC_RP_CLIENT_ID not in audiences:
            raise SuspiciousOperation("the ID token was issued to another client")
        expected = settings.OIDC_ISSUER or str(discovery().get("issuer", ""))
        if expected and str(payload.get("iss", "")).rstrip("/") != expected.rstrip("/"):
            raise SuspiciousOperation("the ID token comes from another issuer")
        return payload

    def get_or_create_user(self, access_token: str, id_token: str, payload: dict[str, Any]) -> User:
        """The userinfo claims over the ID token's (groups may be in either), through `sso.sign_in`."""
        userinfo = self.get_userinfo(access_token, id_token, payload)
        if userinfo.get("sub") != payload.get("sub"):
            raise SuspiciousOperation("the userinfo subject is not the ID token's")
        return sso.sign_in(issuer=str(payload["iss"]), claims={**payload, **userinfo}, request=self.request)


class AuthenticateView(OIDCAuthenticationRequestView):
    """The "Sign in with <provider>" link: redirects to the provider's authorization endpoint."""

    get_settings = staticmethod(setting)

    def __init__(self, **kwargs: Any) -> None:
        super(OIDCAuthenticationRequestView, self).__init__(**kwargs)  # the endpoints are read in get()

    def get(self, request: HttpRequest) -> HttpResponse:
        if not enabled():
            raise Http404("Single sign-on is not configured.")
        try:
            self.OIDC_OP_AUTH_ENDPOINT = setting("OIDC_OP_AUTHORIZATION_ENDPOINT")
            self.OIDC_RP_CLIENT_ID = setting("OIDC_RP_CLIENT_ID")
            response: HttpResponse = super().get(request)
        except (requests.RequestException, SsoSignInRefused) as exc:
            logger.warning("SSO sign-in: the provider's configuration could not be read: %s", exc)
            messages.error(request, f"{settings.OIDC_PROVIDER_NAME} cannot be reached right now. Try again later.")
            return redirect("accounts:login")
        return response


class CallbackView(OIDCAuthenticationCallbackView):
    """The provider sends the browser back here with a code: sign in, or back to the login page with the reason."""

    def get(self, request: HttpRequest) -> HttpResponse:
        if not enabled():
            raise Http404("Single sign-on is not configured.")
        try:
            response: HttpResponse = super().get(request)
        except SsoSignInRefused as exc:
            sso.record_refused_sign_in(request=request, error=exc)
            messages.error(request, exc.message)
            return redirect("accounts:login")
        return response

    def login_success(self) -> HttpResponse:
        services.log_in(request=self.request, user=self.user)
        return HttpResponseRedirect(self.success_url)

    def login_failure(self) -> HttpResponse:
        """The provider answered with an error (e.g. the person declined), or the callback is stale."""
        error = self.request.GET.get("error", "")[:100]
        refused = SsoSignInRefused(
            f"Sign-in with {settings.OIDC_PROVIDER_NAME} did not complete{f' ({error})' if error else ''}. Try again.",
            code="sso_incomplete",
        )
        sso.record_refused_sign_in(request=self.request, error=refused)
        messages.error(self.request, refused.message)
        return redirect("accounts:login")
