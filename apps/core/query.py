"""Strict query parameters for every API list and action, in one place: pagination, django-filter filters,
ordering and search (the DEFAULT_* classes in settings), and `read_query` for an action's own parameters.

A value the operation does not accept is a 400 `invalid_query` problem naming the parameter, never silently
ignored and never a database error. The bounds enforced here are the ones apps/core/openapi.py publishes."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.db import models
from django.db.models import QuerySet
from django_filters import filters as filter_types
from django_filters.filterset import BaseFilterSet
from django_filters.rest_framework import DjangoFilterBackend
from django_filters.utils import get_model_field
from rest_framework import serializers
from rest_framework.filters import OrderingFilter, SearchFilter
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.views import APIView

from apps.core.errors import InvalidQuery

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1  # PostgreSQL bigint: ids and counters beyond it cannot exist
MAX_PAGE_SIZE = 1000
MAX_OFFSET = 2**31 - 1
MAX_SEARCH_LENGTH = 200
NO_CONTROL_CHARACTERS = r"^[^\u0000-\u001f\u007f]*$"


def invalid(parameter: str, message: str) -> InvalidQuery:
    return InvalidQuery(f"Query parameter `{parameter}`: {message}", extra={"errors": {parameter: [message]}})


def invalid_all(errors: dict[str, Any]) -> InvalidQuery:
    errors = {name: [str(message) for message in messages] for name, messages in errors.items()}
    detail = "; ".join(f"`{name}`: {' '.join(messages)}" for name, messages in errors.items())
    return InvalidQuery(f"Invalid query parameters: {detail}", extra={"errors": errors})


def refuse_empty(request: Request, names: list[str]) -> None:
    """`?until=` is not a date: a parameter that is given must have a value (forms treat empty as absent; the
    API's schema does not)."""
    message = "Give a value or leave the parameter out."
    empty = {name: [message] for name in names if request.query_params.get(name) == ""}
    if empty:
        raise invalid_all(empty)


def read_query(request: Request, serializer_class: type[serializers.Serializer[Any]]) -> dict[str, Any]:
    """An action's own query parameters, read through a serializer (the same one its schema is built from)."""
    query = serializer_class(data=request.query_params)
    refuse_empty(request, [name for name, field in query.fields.items() if not getattr(field, "allow_blank", False)])
    if not query.is_valid():
        raise invalid_all(query.errors)
    return dict(query.validated_data)


def _strict_int(request: Request, name: str, default: int, minimum: int, maximum: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit() or not minimum <= int(raw) <= maximum:
        raise invalid(name, f"must be a whole number from {minimum} to {maximum}, not {raw[:40]!r}.")
    return int(raw)


class BoundedPagination(LimitOffsetPagination):
    """`limit` 1-1000 and `offset` 0-2^31-1, checked before any query runs."""

    max_limit = MAX_PAGE_SIZE

    def get_limit(self, request: Request) -> int | None:
        if self.default_limit is None:
            return None
        return _strict_int(request, self.limit_query_param, self.default_limit, 1, MAX_PAGE_SIZE)

    def get_offset(self, request: Request) -> int:
        return _strict_int(request, self.offset_query_param, 0, 0, MAX_OFFSET)

    def get_schema_operation_parameters(self, view: APIView) -> list[dict[str, Any]]:
        bounds = {self.limit_query_param: (1, MAX_PAGE_SIZE), self.offset_query_param: (0, MAX_OFFSET)}
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            low, high = bounds[parameter["name"]]
            parameter["schema"].update(minimum=low, maximum=high)
        return parameters


class StrictBooleanField(forms.Field):
    """`true`/`false` (or 1/0); django-filter's default widget turns anything else into "no filter"."""

    def to_python(self, value: Any) -> bool | None:
        if value in (None, ""):
            return None
        text = str(value).lower()
        if text in ("true", "1"):
            return True
        if text in ("false", "0"):
            return False
        raise forms.ValidationError("Use true or false.")


def is_integer_filter(filter_field: Any, model: type[models.Model] | None) -> bool:
    if not isinstance(filter_field, filter_types.NumberFilter) or model is None:
        return False
    model_field = get_model_field(model, filter_field.field_name)
    return isinstance(model_field, models.IntegerField | models.AutoField | models.ForeignKey)


def harden(filterset: BaseFilterSet) -> None:
    """Bound integer filters to what the column can hold and make booleans strict, before the form is built."""
    model = filterset._meta.model
    for filter_field in filterset.filters.values():
        if isinstance(filter_field, filter_types.BooleanFilter):
            filter_field.field_class = StrictBooleanField
            filter_field.extra.pop("widget", None)
        elif is_integer_filter(filter_field, model):
            filter_field.field_class = forms.IntegerField
            filter_field.extra.setdefault("min_value", INT64_MIN)
            filter_field.extra.setdefault("max_value", INT64_MAX)


class StrictFilterBackend(DjangoFilterBackend):
    def get_filterset(self, request: Request, queryset: QuerySet[Any], view: APIView) -> BaseFilterSet | None:
        filterset = super().get_filterset(request, queryset, view)
        if filterset is not None:
            harden(filterset)
        return filterset

    def filter_queryset(self, request: Request, queryset: QuerySet[Any], view: APIView) -> QuerySet[Any]:
        filterset = self.get_filterset(request, queryset, view)
        if filterset is None:
            return queryset
        typed = [name for name, field in filterset.filters.items() if not isinstance(field, filter_types.CharFilter)]
        refuse_empty(request, typed)
        if not filterset.is_valid():
            raise invalid_all(filterset.errors)
        return cast("QuerySet[Any]", filterset.qs)


def ordering_pattern(fields: list[str]) -> str:
    term = "-?(" + "|".join(fields) + ")"
    return f"^{term}(,{term})*$"


class StrictOrderingFilter(OrderingFilter):
    """An unknown `ordering` field is refused, not ignored; the schema lists the allowed ones as a pattern."""

    def get_ordering(self, request: Request, queryset: QuerySet[Any], view: APIView) -> Any:
        raw = request.query_params.get(self.ordering_param)
        if raw is not None:
            terms = [term.strip() for term in raw.split(",")]
            if not all(terms) or len(self.remove_invalid_fields(queryset, terms, view, request)) != len(terms):
                allowed = ", ".join(sorted(self._allowed(queryset, view)))
                raise invalid(self.ordering_param, f"order by one or more of {allowed} (prefix - for descending).")
        return super().get_ordering(request, queryset, view)

    def _allowed(self, queryset: QuerySet[Any], view: APIView) -> list[str]:
        return [name for name, _label in self.get_valid_fields(queryset, view, {"request": None})]

    def get_schema_operation_parameters(self, view: APIView) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        model = getattr(getattr(view, "get_serializer_class", lambda: None)(), "Meta", None)
        if parameters and model is not None and hasattr(model, "model"):
            pattern = ordering_pattern(self._allowed(model.model._default_manager.none(), view))
            for parameter in parameters:
                parameter["schema"]["pattern"] = pattern
        return parameters


class StrictSearchFilter(SearchFilter):
    """Search terms are text: at most 200 characters and no control characters (PostgreSQL refuses NUL)."""

    def get_search_terms(self, request: Request) -> list[str]:
        raw = request.query_params.get(self.search_param, "")
        if len(raw) > MAX_SEARCH_LENGTH or any(ord(char) < 32 or ord(char) == 127 for char in raw):
            raise invalid(self.search_param, f"use at most {MAX_SEARCH_LENGTH} characters and no control characters.")
        return list(super().get_search_terms(request))

    def get_schema_operation_parameters(self, view: APIView) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            parameter["schema"].update(maxLength=MAX_SEARCH_LENGTH, pattern=NO_CONTROL_CHARACTERS)
        return parameters
