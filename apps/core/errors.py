"""Domain errors. Services raise these; the API handler and views turn them into problem details or form errors.

Each subclass carries a stable machine-readable `code` (clients switch on it) and an HTTP status.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from django import forms


class ApplicationError(Exception):
    """`field` names the input the error belongs to (a form field, a body key): the API answers it as
    `errors: {field: [message]}` and pages put it on that form field (`form.add_error(exc.field, ...)`)."""

    code = "application_error"
    status = 400
    title = "Request could not be completed"
    field: str | None = None

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        extra: dict[str, Any] | None = None,
        field: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        if field:
            self.field = field
        self.extra = extra or {}


class ValidationFailed(ApplicationError):
    code = "validation_failed"
    status = 400
    title = "Invalid input"


class PermissionDenied(ApplicationError):
    code = "permission_denied"
    status = 403
    title = "Permission denied"


class NotFound(ApplicationError):
    code = "not_found"
    status = 404
    title = "Not found"


class Conflict(ApplicationError):
    code = "conflict"
    status = 409
    title = "Conflict"


class Throttled(ApplicationError):
    """Too many attempts: answered 429 with a Retry-After header (seconds)."""

    code = "throttled"
    status = 429
    title = "Too many requests"

    def __init__(self, message: str, *, retry_after: int, code: str | None = None) -> None:
        super().__init__(message, code=code, extra={"retry_after": retry_after})
        self.retry_after = retry_after


class InvalidQuery(ValidationFailed):
    """A query parameter the operation declares, with a value it does not accept (never ignored, never a 500)."""

    code = "invalid_query"
    title = "Invalid query parameter"


def add_to_form(form: forms.BaseForm, exc: ApplicationError) -> None:
    """Put a service's error on the form field it names, or above the form when the form has no such field."""
    form.add_error(exc.field if exc.field in form.fields else None, exc.message)
