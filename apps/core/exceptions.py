"""One DRF exception handler that renders every API error as RFC 7807 problem details.

Shape: {"type", "title", "status", "detail", "code", "errors"?}. `code` is stable; `errors` maps field names
to messages for validation failures so clients can point at the offending field.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404, HttpRequest, JsonResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler

from apps.core.errors import ApplicationError, Throttled

PROBLEM_CONTENT_TYPE = "application/problem+json"
PROBLEM_TYPE_BASE = "https://paved.dev/problems/"

_DRF_CODES: dict[type[Exception], str] = {
    drf_exceptions.ValidationError: "validation_failed",
    drf_exceptions.ParseError: "malformed_request",
    drf_exceptions.AuthenticationFailed: "authentication_failed",
    drf_exceptions.NotAuthenticated: "not_authenticated",
    drf_exceptions.PermissionDenied: "permission_denied",
    drf_exceptions.NotFound: "not_found",
    drf_exceptions.MethodNotAllowed: "method_not_allowed",
    drf_exceptions.NotAcceptable: "not_acceptable",
    drf_exceptions.UnsupportedMediaType: "unsupported_media_type",
    drf_exceptions.Throttled: "throttled",
}


def problem(status: int, code: str, title: str, detail: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
    }
    body.update(extra)
    return body


def _flatten(detail: Any) -> Any:
    if isinstance(detail, dict):
        return {key: _flatten(value) for key, value in detail.items()}
    if isinstance(detail, list):
        return [_flatten(item) for item in detail]
    return str(detail)


def problem_details_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ApplicationError):
        extra = {"errors": {exc.field: [exc.message]}, **exc.extra} if exc.field else exc.extra
        body = problem(exc.status, exc.code, exc.title, exc.message, **extra)
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, Throttled) else None
        return Response(body, status=exc.status, content_type=PROBLEM_CONTENT_TYPE, headers=headers)
    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf_exceptions.PermissionDenied()
    response = exception_handler(exc, context)
    if response is None or not isinstance(exc, drf_exceptions.APIException):
        return response
    code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), "error")
    if isinstance(exc, drf_exceptions.ValidationError):
        errors = _flatten(exc.detail)
        if not isinstance(errors, dict):
            errors = {"non_field_errors": errors}
        body = problem(
            response.status_code, code, "Invalid input", "One or more fields are invalid; see `errors`.", errors=errors
        )
    else:
        body = problem(response.status_code, code, str(response.status_text), str(_flatten(exc.detail)))
    response.data = body
    response.content_type = PROBLEM_CONTENT_TYPE
    return response


def problem_response(request: HttpRequest, status: int, code: str, title: str, detail: str) -> JsonResponse:
    """Problem details outside DRF (Django's 404/500 handlers for /api/ paths)."""
    return JsonResponse(
        problem(status, code, title, detail, instance=request.path),
        status=status,
        content_type=PROBLEM_CONTENT_TYPE,
    )
