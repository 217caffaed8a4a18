"""What every list page shares: one page size, one way to cut a filtered list into pages (the pager template,
templates/partials/pager.html, keeps the filters in its links), and a yes/no filter whose empty choice says what it
means instead of django-filter's "Unknown"."""

from __future__ import annotations

from typing import Any

import django_filters
from django import forms
from django.core.paginator import Page, Paginator
from django.db.models import QuerySet
from django.http import HttpRequest

PAGE_SIZE = 50


class FilterForm(forms.Form):
    """A list page's filter form (a FilterSet's `Meta.form`): its ids start with `filter-`, so they never clash
    with the create form on the same page (both have a "team" field)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "filter-%s")
        super().__init__(*args, **kwargs)


def list_page(request: HttpRequest, queryset: QuerySet[Any], *, size: int = PAGE_SIZE) -> Page[Any]:
    return Paginator(queryset, size).get_page(request.GET.get("page"))


def yes_no_filter(*, field_name: str, label: str, any_label: str, yes: str, no: str) -> Any:
    """A boolean filter shown as a select of `any_label`, `yes` and `no`; it takes the API's "true" and "false"
    and refuses anything else (a choice filter, so the API's strict-boolean hardening leaves it alone)."""

    def keep(queryset: QuerySet[Any], name: str, value: str) -> QuerySet[Any]:
        return queryset.filter(**{field_name: value == "true"})

    return django_filters.ChoiceFilter(
        choices=[("true", yes), ("false", no)], empty_label=any_label, label=label, method=keep
    )
