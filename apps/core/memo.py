"""A value computed once per request and kept on it: a navigation badge and the home page that repeats its count
read one query between them (like the membership memo, apps.accounts.permissions)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar, cast

from django.http import HttpRequest

T = TypeVar("T")


def once_per_request(request: HttpRequest, key: str, compute: Callable[[], T]) -> T:
    attribute = f"_paved_memo_{key}"
    if not hasattr(request, attribute):
        setattr(request, attribute, compute())
    return cast(T, getattr(request, attribute))
