"""Per-request memo of the user's memberships (see `apps.accounts.permissions`)."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

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
