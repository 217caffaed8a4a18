"""Reading API request bodies the same way everywhere: one field read before validation (the team a create names,
so the caller is authorized before the rest is parsed), and a serializer's validated data."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rest_framework import serializers
from rest_framework.request import Request


def body_field(request: Request, name: str) -> str:
    """`name` from a JSON object body as text; "" when absent or when the body is not an object (the
    serializer's validation then answers what it wants)."""
    return str(request.data.get(name, "")) if isinstance(request.data, Mapping) else ""


def validated_body(request: Request, serializer: type[serializers.Serializer[Any]]) -> dict[str, Any]:
    payload = serializer(data=request.data)  # a list or scalar body: DRF's own 400
    payload.is_valid(raise_exception=True)
    return dict(payload.validated_data)
