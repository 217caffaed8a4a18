"""Portal-level pages: the home page and friendly error pages (JSON problem details under /api/)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.template import loader

from apps.accounts.selectors import memberships_for
from apps.core.exceptions import problem_response
from apps.ops.selectors import live_workers


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


@login_required
def home(request: HttpRequest) -> HttpResponse:
    context = {"memberships": memberships_for(request.user), "workers": live_workers()}
    return render(request, "home.html", context)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if _is_api(request):
        return problem_response(request, 400, "bad_request", "Bad request", "The request could not be understood.")
    return render(request, "errors/400.html", status=400)


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
