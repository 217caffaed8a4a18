"""What base.html shows about runs on every page: the change-freeze banner (a context processor, lazy: a
response that never renders the banner runs no query) and the navigation's approvals badge
(`portal.navigation`): how many pending approvals the user can decide."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from apps.accounts.permissions import can
from apps.core.memo import once_per_request
from apps.runs.selectors import approvals_waiting_for, freeze_notice_for


def change_freeze(request: HttpRequest) -> dict[str, Any]:
    user = request.user
    return {"freeze_notice": SimpleLazyObject(lambda: freeze_notice_for(user) or False)}


def approvals_waiting_count(request: HttpRequest) -> int:
    """One COUNT a request: the badge and the home page that shows it again read the same number. Users who
    manage no team ask nothing."""
    user = request.user
    return once_per_request(
        request, "approvals_waiting", lambda: approvals_waiting_for(user).count() if can(user, "audit.oversee") else 0
    )
