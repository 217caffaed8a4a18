"""The OpenAPI schema tells the truth about errors, centrally: every operation declares the problem-details
responses it can give, and query parameters carry the bounds apps/core/query.py enforces.

`ProblemAutoSchema` (settings' DEFAULT_SCHEMA_CLASS) adds, to each operation, the statuses that follow from what
the operation is: 401/403 when it needs credentials, 400 when it reads input, 404 when it names a resource or acts,
409 when it changes state, 413/415 when it takes a body, 429 when it is throttled. An operation that can answer
another status says so with `@problem_responses(...)`. Each response is the `Problem` component under
`application/problem+json`, described with the stable `code` values known for that status."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import Any, TypeVar

from drf_spectacular.contrib.django_filters import DjangoFilterExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.plumbing import ResolvedComponent

from apps.core.errors import ApplicationError
from apps.core.exceptions import _DRF_CODES, PROBLEM_CONTENT_TYPE, PROBLEM_TYPE_BASE
from apps.core.query import INT64_MAX, INT64_MIN, is_integer_filter

F = TypeVar("F", bound=Callable[..., Any])
MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
WITH_BODY = {"POST", "PUT", "PATCH"}
EXTRA_STATUSES_ATTR = "_problem_statuses"
DESCRIPTIONS = {
    400: "Invalid input: a field (see `errors`), a query parameter or the request as a whole.",
    401: "No credentials, or credentials that are not valid.",
    403: "Authenticated, but not allowed to do this.",
    404: "No such resource among those you may see.",
    409: "The resource is not in a state that allows this.",
    413: "The request body is larger than the server accepts.",
    415: "The request body's content type is not accepted.",
    422: "Well-formed, but semantically invalid.",
    429: "Too many requests; retry after the time in `Retry-After`.",
}
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 7807 problem details. Switch on `code`: it is stable; `title` and `detail` are for people.",
    "required": ["type", "title", "status", "detail", "code"],
    "properties": {
        "type": {"type": "string", "description": f"{PROBLEM_TYPE_BASE}<code>"},
        "title": {"type": "string"},
        "status": {"type": "integer", "minimum": 400, "maximum": 599},
        "detail": {"type": "string"},
        "code": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$", "description": "Stable machine-readable code."},
        "errors": {
            "type": "object",
            "additionalProperties": True,
            "description": "Validation failures: field (or query parameter) name -> messages.",
        },
        "instance": {"type": "string"},
    },
}


def problem_responses(*statuses: int) -> Callable[[F], F]:
    """Declare problem statuses an operation can answer beyond those ProblemAutoSchema infers."""

    def mark(handler: F) -> F:
        setattr(handler, EXTRA_STATUSES_ATTR, (*getattr(handler, EXTRA_STATUSES_ATTR, ()), *statuses))
        return handler

    return mark


def _subclasses(cls: type[ApplicationError]) -> list[type[ApplicationError]]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *_subclasses(sub)]
    return found


def known_codes() -> dict[int, list[str]]:
    """Codes per status: every ApplicationError subclass (apps' errors.py) and DRF's own exceptions."""
    codes: dict[int, set[str]] = defaultdict(set)
    errors: list[type[ApplicationError]] = [ApplicationError, *_subclasses(ApplicationError)]
    for error in errors:
        codes[error.status].add(error.code)
    for exception, code in _DRF_CODES.items():
        codes[getattr(exception, "status_code", 400)].add(code)
    return {status: sorted(names) for status, names in codes.items()}


class ProblemAutoSchema(AutoSchema):
    def get_operation(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        operation = super().get_operation(*args, **kwargs)
        if operation is None:
            return None
        component = ResolvedComponent(
            name="Problem", type=ResolvedComponent.SCHEMA, object="Problem", schema=PROBLEM_SCHEMA
        )
        self.registry.register_on_missing(component)
        codes = known_codes()
        for status in sorted(self._problem_statuses(operation)):
            listed = ", ".join(f"`{code}`" for code in codes.get(status, [])) or "see `code`"
            operation["responses"].setdefault(
                str(status),
                {
                    "description": f"{DESCRIPTIONS.get(status, 'Error.')} Known codes: {listed}.",
                    "content": {PROBLEM_CONTENT_TYPE: {"schema": component.ref}},
                },
            )
        return operation

    def _problem_statuses(self, operation: dict[str, Any]) -> set[int]:
        parameters = operation.get("parameters", [])
        in_path = any(parameter["in"] == "path" for parameter in parameters)
        in_query = any(parameter["in"] == "query" for parameter in parameters)
        statuses: set[int] = set()
        if operation.get("security") and {} not in operation["security"]:
            statuses |= {401, 403}
        if "requestBody" in operation or in_query or self.method in MUTATING:
            statuses.add(400)
        if in_path or self.method in MUTATING:
            statuses.add(404)
        if self.method in MUTATING:
            statuses.add(409)
        if self.method in WITH_BODY:
            statuses |= {413, 415}
        if self.view.get_throttles():
            statuses.add(429)
        action = getattr(self.view, "action", None) or self.method.lower()
        statuses.update(getattr(getattr(self.view, action, None), EXTRA_STATUSES_ATTR, ()))
        return statuses


class BoundedFilterExtension(DjangoFilterExtension):
    """django-filter parameters with the bounds apps.core.query.harden enforces (int64 ids, strict booleans)."""

    priority = 1

    def resolve_filter_field(
        self, auto_schema: Any, model: Any, filterset_class: Any, field_name: str, filter_field: Any
    ) -> list[dict[str, Any]]:
        parameters: list[dict[str, Any]] = super().resolve_filter_field(  # type: ignore[no-untyped-call]
            auto_schema, model, filterset_class, field_name, filter_field
        )
        if is_integer_filter(filter_field, model):
            for parameter in parameters:
                parameter["schema"] = {"type": "integer", "minimum": INT64_MIN, "maximum": INT64_MAX}
        return parameters
