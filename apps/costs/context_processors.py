"""The open cost alerts of the user's teams, for the banner in base.html. Lazy: a page that never renders the
banner (or a response that is not a page) runs no query."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from apps.costs.selectors import open_alerts_for


def cost_alerts(request: HttpRequest) -> dict[str, Any]:
    user = request.user
    return {"cost_alerts": SimpleLazyObject(lambda: open_alerts_for(user))}
