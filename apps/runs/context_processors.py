"""The change-freeze banner in base.html. Lazy: a response that never renders the banner runs no query."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from apps.runs.selectors import freeze_notice_for


def change_freeze(request: HttpRequest) -> dict[str, Any]:
    user = request.user
    return {"freeze_notice": SimpleLazyObject(lambda: freeze_notice_for(user) or False)}
