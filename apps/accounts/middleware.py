"""Per-request memo of the user's memberships (see `apps.accounts.permissions`); the SSO sign-out's CSP."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest, HttpResponse

from apps.accounts import oidc
from apps.accounts.permissions import memberships_memoized


class MembershipMemoMiddleware:
    """Answer every `team_ids_for` / `role_in` of one request from one membership query per user. A page used to
    read the user's team ids 4-5 times (each selector's `restrict`, each `can`); the memo is dropped when the
    response leaves this middleware, so the next request reads the memberships afresh."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        with memberships_memoized():
            return self.get_response(request)


class SsoSignOutCspMiddleware:
    """Let the sign-out form of a session opened through the provider be redirected to the provider's end-session
    endpoint: the pages' CSP `form-action 'self'` covers redirects too, so that one origin is added, for these
    sessions only. Sits inside csp.middleware.CSPMiddleware, which reads `_csp_update` on the way out."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if "text/html" not in response.get("Content-Type", ""):
            return response
        origin = oidc.end_session_origin(request)
        if origin is not None:
            update: dict[str, Any] = dict(getattr(response, "_csp_update", None) or {})
            update["form-action"] = [*update.get("form-action", []), origin]
            response._csp_update = update  # type: ignore[attr-defined]  # django-csp's per-response hook
        return response
