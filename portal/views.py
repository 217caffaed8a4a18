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
from django.utils import timezone

from apps.accounts.models import Role
from apps.accounts.permissions import can, is_platform_admin
from apps.accounts.selectors import authenticated, memberships_for, pick_current_membership
from apps.accounts.services import CURRENT_TEAM_SESSION_KEY
from apps.clusters.selectors import own_clusters
from apps.core.exceptions import problem_response
from apps.costs.selectors import own_spend_this_month
from apps.dashboards.selectors import kpi_rows, scope_for
from apps.deployments.context_processors import rollouts_waiting_count
from apps.deployments.selectors import rollouts_awaiting_approval_for
from apps.ops.selectors import platform_health
from apps.runs.context_processors import approvals_waiting_count
from apps.runs.selectors import approvals_waiting_for, expiring_soon, own_runs_in_flight, own_workspaces, waiting_on


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """ "What is mine and what waits for me", one block per role the user holds (several roles: each block):
    a team member's own workspaces, clusters, runs, spend, expiries and what waits on them; a manager's approvals
    (runs and rollouts) and the KPIs of their current team (platform admins: the whole platform); a platform
    admin's platform health. Each block is one selector; the page's query count is bounded (tests/test_home.py)."""
    user = authenticated(request.user)
    now = timezone.now()
    memberships = list(memberships_for(user))
    context: dict[str, Any] = {"memberships": memberships, "kpi_rows": [], "kpi_team": None}
    if memberships:
        mine = {
            "workspaces": own_workspaces(user),
            "clusters": own_clusters(user),
            "runs": own_runs_in_flight(user),
            "expiring": expiring_soon(user, now=now),
            "waiting": waiting_on(user),
        }
        # Members do the work; a manager or admin sees this block once they have work of their own.
        is_member = any(membership.role == Role.MEMBER for membership in memberships)
        if is_member or any(mine.values()):
            mine["spend"] = own_spend_this_month(user=user, now=now)
            context["mine"] = mine
    if can(user, "audit.oversee"):
        context["approvals"] = list(approvals_waiting_for(user)[:10])
        context["approvals_count"] = approvals_waiting_count(request)
        context["rollouts"] = list(rollouts_awaiting_approval_for(user)[:10])
        context["rollouts_count"] = rollouts_waiting_count(request)
    if can(user, "dashboards.manager_home"):
        current = pick_current_membership(memberships, request.session.get(CURRENT_TEAM_SESSION_KEY))
        team = None if is_platform_admin(user) or current is None else current.team
        context["kpi_team"] = team
        context["kpi_rows"] = kpi_rows(scope=scope_for(user, team), window_days=30, live=False)
    if is_platform_admin(user):
        context["health"] = platform_health(now=now)
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
