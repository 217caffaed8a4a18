"""Portal-level pages: the home page and friendly error pages (JSON problem details under /api/)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.template import loader
from django.template.defaultfilters import filesizeformat

from apps.accounts.permissions import can, is_platform_admin
from apps.accounts.selectors import memberships_for, pick_current_membership
from apps.accounts.services import CURRENT_TEAM_SESSION_KEY
from apps.core.exceptions import problem_response
from apps.dashboards.selectors import kpi_rows, scope_for
from apps.ops.selectors import live_workers


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """Everyone's start page; for managers and platform admins it opens on the KPIs (30-day snapshots) of their
    current team (platform admins: the whole platform), one snapshot read."""
    memberships = list(memberships_for(request.user))
    context: dict[str, Any] = {"memberships": memberships, "workers": live_workers(), "kpi_rows": [], "kpi_team": None}
    if can(request.user, "dashboards.manager_home"):
        current = pick_current_membership(memberships, request.session.get(CURRENT_TEAM_SESSION_KEY))
        team = None if is_platform_admin(request.user) or current is None else current.team
        context["kpi_team"] = team
        context["kpi_rows"] = kpi_rows(scope=scope_for(request.user, team), window_days=30, live=False)
    return render(request, "home.html", context)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if isinstance(exception, RequestDataTooBig):  # raised lazily when multipart fields overflow while read
        return payload_too_large(request, limit=settings.DATA_UPLOAD_MAX_MEMORY_SIZE)
    if _is_api(request):
        return problem_response(request, 400, "bad_request", "Bad request", "The request could not be understood.")
    return render(request, "errors/400.html", status=400)


def payload_too_large(request: HttpRequest, *, limit: int) -> HttpResponse:
    """413 for a body over `limit` bytes. Rendered without the request: it may come before sessions and auth."""
    detail = f"The request body is larger than the {filesizeformat(limit)} this endpoint accepts."
    if _is_api(request):
        return problem_response(request, 413, "payload_too_large", "Payload too large", detail)
    return HttpResponse(loader.render_to_string("errors/413.html", {"limit": limit}), status=413)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _is_api(request):
        return problem_response(
            request, 403, "permission_denied", "Permission denied", "You may not perform this action."
        )
    return render(request, "errors/403.html", {"reason": str(exception or "")}, status=403)


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _is_api(request):
        return problem_response(request, 404, "not_found", "Not found", f"Nothing lives at {request.path}.")
    return render(request, "errors/404.html", status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    if _is_api(request):
        return problem_response(
            request, 500, "server_error", "Server error", "Something broke on our side; it has been logged."
        )
    # Rendered without the request: context processors touch the database, which may be what failed.
    return HttpResponse(loader.render_to_string("errors/500.html"), status=500)
